import { defineConfig } from 'vitest/config'

// The real deployment suite (npm run test:deploy): a Docker engine, the image built, the compose
// files brought up and broken on purpose. Its two files at the same time, each its own compose
// project (the cluster's networks and edge subnet its own: compose.e2e.cluster.yml) on the one
// engine: the cluster's faults are mostly waiting (a 30 s cut, three broker restarts), and one at
// a time the suite took 370 s warm. Long timeouts, its own JSON report for CI's summary line.
export default defineConfig({
  test: {
    include: ['deploy/e2e/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    pool: 'forks',
    maxWorkers: 2,
    fileParallelism: true,
    globalSetup: ['deploy/e2e/global-setup.ts'],
    reporters: ['default', ['json', { outputFile: 'test-results/deploy.json' }]],
  },
})
