import { defineConfig } from 'vitest/config'

// The real deployment suite (npm run test:deploy): a Docker engine, the image built, the compose
// files brought up and broken on purpose. One file at a time (they share the engine and the
// compose networks' fixed names), long timeouts, its own JSON report for CI's summary line.
export default defineConfig({
  test: {
    include: ['deploy/e2e/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    globalSetup: ['deploy/e2e/global-setup.ts'],
    reporters: ['default', ['json', { outputFile: 'test-results/deploy.json' }]],
  },
})
