import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import {
  dropDatabase,
  dropShippedTopology,
  dropTopology,
  registration,
  sql,
  testConfig,
  testEnv,
  waitFor,
} from './support/harness.js'

const CLI = ['--import', 'tsx', 'src/cli.ts']

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...CLI, ...args], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  return port
}

function envRecord(env: ReturnType<typeof testEnv>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = String(v)
  return out
}

describe('the sabt command', () => {
  const env = testEnv()
  const vars = envRecord(env)
  let child: ChildProcess | null = null
  afterAll(async () => {
    child?.kill('SIGKILL')
    await dropTopology(env, testConfig(undefined)).catch(() => {})
    // the shipped config declares three checks: drop what `start` declared
    await dropShippedTopology(env).catch(() => {})
    await dropDatabase(env.DATABASE_URL)
  })

  it('migrate creates the database and is idempotent', async () => {
    const first = await run(['migrate'], vars)
    expect(first.stderr).toBe('')
    expect(first.code).toBe(0)
    expect(first.stdout).toMatch(/applied: 0001_core/)
    const again = await run(['migrate'], vars)
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/up to date/)
    const tables = await sql<{ t: string }>(
      env.DATABASE_URL,
      "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    expect(tables.map((r) => r.t)).toEqual([
      'allocations',
      'api_keys',
      'campaigns',
      'check_cache',
      'check_results',
      'citizen_messages',
      'draws',
      'duplicates',
      'intake_watermark',
      'lookup_codes',
      'operator_audit',
      'operator_sessions',
      'operators',
      'pgmigrations',
      'rate_schedules',
      'recorder_holds',
      'registrations',
      'releases',
      'tracking_codes',
      'waiting',
    ])
    const campaigns = await sql<{ slug: string }>(env.DATABASE_URL, 'SELECT slug FROM campaigns')
    expect(campaigns).toEqual([{ slug: 'demo' }])
  })

  it('start runs the roles, answers, and stops cleanly on SIGTERM; status prints a registration', async () => {
    const port = await freePort()
    child = spawn(process.execPath, [...CLI, 'start', '--roles', 'gateway,recorder,status', '--migrate'], {
      env: { ...process.env, ...vars, PORT: String(port), LOG_LEVEL: 'info' },
    })
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    child.stderr!.on('data', (d) => (out += d))
    const base = `http://127.0.0.1:${port}`
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, 'readyz 200', 30_000, 100)
    // Said once ready (the CLI watches readiness), so a moment after /readyz turned 200.
    await waitFor(() => /Sabt is up/.test(out), '"Sabt is up"', 5000, 50)
    // The admin token came from the environment: someone's secret, never printed.
    expect(out).not.toContain(vars.SABT_ADMIN_TOKEN!)
    expect(out).not.toMatch(/admin token \(generated/)

    const res = await fetch(`${base}/v1/registrations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(registration()),
    })
    expect(res.status).toBe(202)
    const { id } = (await res.json()) as { id: string }
    await waitFor(async () => (await fetch(`${base}/v1/registrations/${id}`)).status === 200, 'recorded')

    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
    expect(out).toMatch(/"event":"stopped"/)
    child = null

    const st = await run(['status', id], vars)
    expect(st.code).toBe(0)
    expect(JSON.parse(st.stdout)).toMatchObject({ id, campaign: 'demo', status: 'recorded' })
    const missing = await run(['status', '0190b6a3-0000-7000-8000-000000000000'], vars)
    expect(missing.code).toBe(1)
    expect(JSON.parse(missing.stdout)).toMatchObject({ status: 'not_found' })
  })

  it('says the admin token came from the generated development file only when it did', async () => {
    const { resolveSecrets } = await import('../src/config/secrets.js')
    const { mkdtempSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const file = `${mkdtempSync(`${tmpdir()}/sabt-secrets-`)}/dev.json`
    const fromEnv = resolveSecrets(testEnv({ SABT_SECRETS_FILE: file }))
    expect([fromEnv.generatedFile, fromEnv.adminTokenGenerated]).toEqual([file, false])
    const generated = resolveSecrets({ ...testEnv({ SABT_SECRETS_FILE: file }), SABT_ADMIN_TOKEN: undefined })
    expect([generated.generatedFile, generated.adminTokenGenerated]).toEqual([file, true])
  })

  it('refuses a bad environment with a message naming the variable', async () => {
    const r = await run(['migrate'], { ...vars, SABT_INTAKE_SHARDS: 'many' })
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/SABT_INTAKE_SHARDS/)
  })
})

describe('npm start', () => {
  it('runs every role and the simulator in one process: a registration reaches its verdict', async () => {
    const env = testEnv()
    const [port, simPort] = [await freePort(), await freePort()]
    const vars = {
      ...envRecord(env),
      PORT: String(port),
      SABT_SIMULATOR_PORT: String(simPort),
      SABT_SIMULATOR_URL: `http://127.0.0.1:${simPort}`,
      LOG_LEVEL: 'warn',
    }
    const child = spawn('npm', ['start', '--silent'], { env: { ...process.env, ...vars }, detached: true })
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    child.stderr!.on('data', (d) => (out += d))
    const base = `http://127.0.0.1:${port}`
    try {
      await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, 'readyz 200', 60_000, 200)
      await waitFor(
        () => out.includes(`Sabt is up (gateway, recorder, checker, status, simulator): ${base}`),
        '"Sabt is up"',
        5000,
        50,
      )
      const res = await fetch(`${base}/v1/registrations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(registration()),
      })
      expect(res.status).toBe(202)
      const { id } = (await res.json()) as { id: string }
      const done = await waitFor(
        async () => {
          const st = (await (await fetch(`${base}/v1/registrations/${id}`)).json()) as { status: string }
          return (st.status === 'accepted' || st.status === 'rejected') && st
        },
        'a verdict from the checks against the simulator',
        30_000,
        100,
      )
      expect(['accepted', 'rejected']).toContain(done.status)
    } finally {
      // npm runs node as a child: signal the whole group, as a terminal's Ctrl-C would.
      process.kill(-child.pid!, 'SIGTERM')
      await once(child, 'exit')
      await dropShippedTopology(env, vars).catch(() => {})
      await dropDatabase(env.DATABASE_URL)
    }
  })
})
