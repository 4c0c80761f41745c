import { defineConfig } from 'vitest/config'

// The fault-injection suite: sequential (it breaks the shared broker and database on purpose),
// long timeouts, its own JSON report for CI's summary line.
export default defineConfig({
  test: {
    include: ['chaos/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    globalSetup: ['chaos/global-setup.ts'],
    reporters: ['default', ['json', { outputFile: 'test-results/chaos.json' }]],
  },
})
