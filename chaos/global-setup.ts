import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { ensureServicesUp } from './support/services.js'

/** Builds dist/ (the processes run the compiled CLI, as production does) and makes sure services are up. */
export async function setup(): Promise<void> {
  mkdirSync('test-results', { recursive: true })
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' })
  await ensureServicesUp()
}

export async function teardown(): Promise<void> {
  await ensureServicesUp()
}
