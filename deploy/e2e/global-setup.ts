import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { ROOT } from './support/paths.js'
import { run, runOk } from './support/run.js'
import type { E2E } from './support/stack.js'

declare module 'vitest' {
  export interface ProvidedContext {
    e2e: E2E
  }
}

/** The compose projects the suite creates; teardown removes whatever of them is left. */
export const PROJECTS = ['sabt-e2e', 'sabt-e2e-cluster']

const started = Date.now()

async function sh(script: string, env: Record<string, string | undefined>): Promise<string> {
  const r = await run('bash', [join(ROOT, script), ...(script.endsWith('engine.sh') ? ['start'] : [])], {
    env,
  })
  process.stdout.write(r.err)
  if (r.code !== 0) throw new Error(`${script} failed (${r.code}):\n${r.err}\n${r.out}`)
  return r.out
}

/**
 * The real deployment suite's setup: the Docker engine (installed and started if needed), the
 * base images and stand-ins (cached by content hash), and the project's own Dockerfile built as
 * it is. Teardown removes every container, network and volume the suite made and stops the
 * engine it started; the image cache stays.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const hostEnv = { PATH: process.env.PATH, HOME: process.env.HOME }
  const t0 = Date.now()
  await sh('deploy/e2e/engine.sh', hostEnv)
  const engineEnv = Object.fromEntries(
    (await runOk('bash', [join(ROOT, 'deploy/e2e/engine.sh'), 'env']))
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('=', 2) as [string, string]),
  )
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    ...engineEnv,
  }
  const images = Object.fromEntries(
    (await sh('deploy/e2e/images.sh', env))
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => l.split('=', 2) as [string, string]),
  )
  Object.assign(env, images)
  const tImages = Date.now()

  // The project's Dockerfile, unchanged, with BuildKit (its RUN --mount cache needs it). Debian's
  // CLI has BuildKit built in; the newer CLI on PATH would want buildx, which is not here.
  const build = await run(
    '/usr/bin/docker',
    ['build', '--progress=plain', '--target', 'runtime', '-t', 'sabt:local', '.'],
    { env: { ...env, DOCKER_BUILDKIT: '1' }, cwd: ROOT, timeoutMs: 900_000 },
  )
  if (build.code !== 0) throw new Error(`docker build failed:\n${build.err.slice(-4000)}`)
  const tBuild = Date.now()
  // The tag docker-compose.yml uses by default (SABT_IMAGE unset), as docs/deployment.md builds it.

  // The machine's cap on open files (a hard limit no process may raise): compose.e2e.yml lowers
  // the compose files' ulimits to it.
  const cap = Number((await runOk('bash', ['-c', 'ulimit -Hn'])).trim())
  env.SABT_E2E_NOFILE = String(Number.isFinite(cap) ? Math.min(cap, 65536) : 65536)

  const setupSeconds = (Date.now() - t0) / 1000
  console.log(
    `deploy suite setup: engine + base images ${((tImages - t0) / 1000).toFixed(0)} s, ` +
      `Sabt image ${((tBuild - tImages) / 1000).toFixed(0)} s`,
  )
  project.provide('e2e', { env, setupSeconds })

  return async () => {
    const keepStack = process.env.SABT_E2E_KEEP_STACK === '1'
    for (const p of keepStack ? [] : PROJECTS) {
      const ids = (
        await run('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${p}`], { env })
      ).out
        .split('\n')
        .filter(Boolean)
      if (ids.length) await run('docker', ['rm', '-f', '-v', ...ids], { env })
      const vols = (
        await run('docker', ['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${p}`], {
          env,
        })
      ).out
        .split('\n')
        .filter(Boolean)
      if (vols.length) await run('docker', ['volume', 'rm', '-f', ...vols], { env })
    }
    const nets = (await run('docker', ['network', 'ls', '-q', '--filter', 'name=sabt_'], { env })).out
      .split('\n')
      .filter(Boolean)
    if (nets.length && !keepStack) await run('docker', ['network', 'rm', ...nets], { env })
    const left = (await run('docker', ['ps', '-aq'], { env })).out.trim()
    if (process.env.SABT_E2E_KEEP_ENGINE !== '1' && !keepStack) {
      const stop = await run('bash', [join(ROOT, 'deploy/e2e/engine.sh'), 'stop'], { env: hostEnv })
      process.stdout.write(stop.out + stop.err)
    }
    const wall = (Date.now() - started) / 1000
    mkdirSync(join(ROOT, 'test-results'), { recursive: true })
    writeFileSync(
      join(ROOT, 'test-results/deploy-timing.json'),
      JSON.stringify({ wallSeconds: wall, setupSeconds, leftContainers: left !== '' }, null, 2),
    )
    console.log(`deploy suite: ${wall.toFixed(0)} s wall time (setup ${setupSeconds.toFixed(0)} s)`)
  }
}
