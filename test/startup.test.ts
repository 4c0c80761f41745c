import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { AMQP_URL, dropDatabase, dropShippedTopology, testEnv, waitFor } from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

/**
 * A newcomer's first minutes: each start-up failure is one line naming the service or port, the
 * variable that sets it and what to do — never a stack trace — and "Sabt is up" only once /readyz
 * answers 200. The real CLI, as a child process.
 */
const CLI = ['--import', 'tsx', 'src/cli.ts']
const STACK = /\n\s+at [^\n]+:\d+:\d+|TCPConnectWrap|node:internal/

function vars(overrides: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(testEnv())) if (v !== undefined) out[k] = String(v)
  return { ...out, LOG_LEVEL: 'error', ...overrides }
}

function spawnCli(args: string[], env: Record<string, string>): { child: ChildProcess; out: () => string } {
  const child = spawn(process.execPath, [...CLI, ...args], { env: { ...process.env, ...env } })
  let out = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (out += d))
  return { child, out: () => out }
}

async function exitOf(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  const { child, out } = spawnCli(args, env)
  const [code] = (await once(child, 'exit')) as [number]
  return { code, out: out() }
}

async function occupied(): Promise<{ server: Server; port: number }> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, port: (server.address() as { port: number }).port }
}

/** SIGKILL, and wait until the process is gone: nothing of it may declare a queue after cleanup. */
async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = once(child, 'exit')
  child.kill('SIGKILL')
  await gone
}

async function freePort(): Promise<number> {
  const { server, port } = await occupied()
  server.close()
  return port
}

describe('start-up messages', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  it('PostgreSQL unreachable: one line naming it, DATABASE_URL and what to do; no stack trace', async () => {
    const r = await exitOf(['start', '--roles', 'gateway,recorder', '--migrate'], {
      ...vars(),
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5999/sabt',
      PORT: String(await freePort()),
    })
    expect(r.code).toBe(1)
    expect(r.out.trim()).toBe(
      'sabt: PostgreSQL at 127.0.0.1:5999 is unreachable (ECONNREFUSED): start PostgreSQL there, or set DATABASE_URL to one that runs',
    )
    expect(r.out).not.toMatch(STACK)
  })

  it('PORT taken: one line naming the port, PORT and what to do; no stack trace', async () => {
    const { server, port } = await occupied()
    cleanups.push(async () => void server.close())
    const env = vars({ PORT: String(port) })
    cleanups.push(async () => {
      await dropShippedTopology(testEnv(env), env) // declared before the port is tried
      await dropDatabase(env.DATABASE_URL!)
    })
    const r = await exitOf(['start', '--roles', 'gateway', '--migrate'], env)
    expect(r.code).toBe(1)
    expect(r.out).toContain(
      `sabt: port ${port} (PORT, the HTTP API) is already in use: stop what listens there, or set PORT to a free port\n`,
    )
    expect(r.out).not.toMatch(STACK)
    expect(r.out).not.toContain('Sabt is up')
  })

  it('SABT_SIMULATOR_PORT taken: one line naming the port, the variable and what to do; no stack trace', async () => {
    const { server, port } = await occupied()
    cleanups.push(async () => void server.close())
    const r = await exitOf(['start', '--roles', 'simulator'], vars({ SABT_SIMULATOR_PORT: String(port) }))
    expect(r.code).toBe(1)
    expect(r.out.trim()).toBe(
      `sabt: port ${port} (SABT_SIMULATOR_PORT, the provider simulator) is already in use: stop what listens there, or set SABT_SIMULATOR_PORT to a free port`,
    )
  })

  it('RabbitMQ unreachable: says it waits for it (where, AMQP_URL), and "Sabt is up" only once /readyz is 200', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5672)
    const brokerPort = await freePort() // nothing listens there yet: the broker is "down"
    const port = await freePort()
    const env = vars({ AMQP_URL: `amqp://guest:guest@127.0.0.1:${brokerPort}`, PORT: String(port) })
    cleanups.push(async () => {
      await dropShippedTopology(testEnv({ ...env, AMQP_URL }), env) // on the machine's broker, not the proxy
      await dropDatabase(env.DATABASE_URL!)
    })
    const { child, out } = spawnCli(['start', '--roles', 'gateway,recorder,status', '--migrate'], env)
    cleanups.push(async () => {
      await killed(child)
      await proxy.close()
    })
    await waitFor(() => out().includes('waiting for RabbitMQ'), 'the waiting line', 30_000, 100)
    expect(out()).toContain(
      `sabt: waiting for RabbitMQ at 127.0.0.1:${brokerPort} (AMQP_URL): start it (rabbitmq-server -detached), or set AMQP_URL to a running broker — nothing is accepted until then\n`,
    )
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503)
    expect(out()).not.toContain('Sabt is up')

    await proxy.start(brokerPort) // the broker comes up
    await waitFor(() => out().includes('Sabt is up'), '"Sabt is up"', 30_000, 100)
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200)
    expect(out().match(/waiting for RabbitMQ/g)).toHaveLength(1)
    expect(out()).not.toMatch(STACK)
  })

  it('a provider whose sample answer maps wrongly stops the start, naming the key; no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sabt-startup-'))
    const file = join(dir, 'sabt.yaml')
    writeFileSync(
      file,
      `providers:
  registry:
    fields: [national_id]
    answer: { outcome: 'verified ? "passed" : "failed"', reason: code }
    samples:
      - { answer: { verified: true }, outcome: passed }
      - { answer: { status: "VERIFIED" }, outcome: passed }
checks:
  identity: { provider: registry, url: http://127.0.0.1:9/verify }
campaigns:
  demo: { title: Demo, checks: [identity] }
`,
    )
    const r = await exitOf(['start', '--roles', 'checker'], vars({ SABT_CONFIG: file }))
    expect(r.code).toBe(1)
    expect(r.out.trim()).toBe(
      `sabt: invalid configuration: providers.registry.samples.1: the answer {"status":"VERIFIED"} maps to failed (unspecified), the sample says passed`,
    )
  })
})
