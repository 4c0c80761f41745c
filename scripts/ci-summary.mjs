#!/usr/bin/env node
// Prints "N passed, N failed" from vitest's JSON reports (npm test, the chaos suite, the deploy
// suite). A failure before vitest ran (typecheck, lint) or a test file that could not load counts
// as a failure too.
import { existsSync, readFileSync } from 'node:fs'

const rc = Number(process.argv[2] ?? 0)
let passed = 0
let failed = 0
for (const file of ['test-results/vitest.json', 'test-results/chaos.json', 'test-results/deploy.json']) {
  if (!existsSync(file)) continue
  const r = JSON.parse(readFileSync(file, 'utf8'))
  passed += r.numPassedTests ?? 0
  failed += r.numFailedTests ?? 0
  // Files that failed outside any test (import error, hook failure) have no failed test to count.
  for (const f of r.testResults ?? []) {
    if (f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed')) failed += 1
  }
}
if (rc !== 0 && failed === 0) failed = 1
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed > 0 ? 1 : 0)
