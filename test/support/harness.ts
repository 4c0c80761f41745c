import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import amqp from 'amqplib'
import pg from 'pg'
import { v7 as uuidv7 } from 'uuid'
import {
  buildConfig,
  defaultConfigPath,
  loadConfigFile,
  type SabtConfig,
} from '../../src/config/campaigns.js'
import { type Env, loadEnv } from '../../src/config/env.js'
import { withCheckDigit } from '../../src/domain/national-id.js'
import type { MqClient } from '../../src/mq/connection.js'
import { Publisher } from '../../src/mq/publisher.js'
import { deleteTopology } from '../../src/mq/topology.js'
import { createLogger, type Logger } from '../../src/observability/logger.js'
import { Metrics } from '../../src/observability/metrics.js'
import { newKey } from '../../src/privacy/sealing.js'
import { type Role, type Running, startSabt, topologyOptions } from '../../src/runtime/start.js'

export const PG_ADMIN_URL = process.env.SABT_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres'
export const AMQP_URL = process.env.SABT_TEST_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672'

/** A name unique to this run and this call: every test gets its own database and queue prefix. */
export function uniqueName(kind: string): string {
  return `t_${kind}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`
}

export function testDatabaseUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL)
  u.pathname = `/${name}`
  return u.toString()
}

/** An environment for one test: its own database, its own queues, fresh keys, port 0. */
export function testEnv(overrides: Record<string, string> = {}): Env {
  const db = uniqueName('db')
  return loadEnv({
    DATABASE_URL: testDatabaseUrl(db),
    AMQP_URL,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.SABT_TEST_LOG_LEVEL ?? 'error',
    SABT_MQ_PREFIX: uniqueName('mq'),
    SABT_DATA_KEYS: `k1:${newKey()}`,
    SABT_INDEX_KEY: newKey(),
    SABT_ADMIN_TOKEN: randomBytes(24).toString('base64url'),
    SABT_BATCH_MS: '10',
    SABT_CONFIRM_TIMEOUT_MS: '3000',
    // The intake watermark (decision 022) follows the tests' registrations closely.
    SABT_INTAKE_WATERMARK_MARGIN_MS: '0',
    SABT_INTAKE_WATERMARK_EVERY_MS: '300',
    SABT_INTAKE_WATERMARK_HEARTBEAT_MS: '100',
    SABT_FINALITY_SWEEP_MS: '200',
    ...overrides,
  })
}

/** A configuration for tests; the simulator URL can point at a test server. */
export function testConfig(doc?: unknown, env: Record<string, string> = {}): SabtConfig {
  return buildConfig(
    doc ?? {
      retry_tiers: ['1s', '10s'],
      checks: {
        identity: { provider: 'identity', url: 'http://127.0.0.1:9/identity' },
        mobile: { provider: 'mobile', url: 'http://127.0.0.1:9/mobile' },
      },
      campaigns: {
        demo: { title: 'Demo', checks: ['identity', { name: 'mobile', after: ['identity'] }] },
        nocheck: { title: 'No checks' },
        later: { title: 'Not open yet', opens_at: '2999-01-01T00:00:00Z' },
      },
    },
    env,
  )
}

/** Captures every log line (JSON) a test's roles write, to assert on them. */
export function captureLogger(level = 'info'): { log: Logger; lines: string[] } {
  const lines: string[] = []
  const dest = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(l)
      cb()
    },
  })
  return { log: createLogger({ level, destination: dest }), lines }
}

export interface TestSabt extends Running {
  cleanup(): Promise<void>
}

/**
 * Starts roles in-process against the real PostgreSQL and RabbitMQ, with unique names;
 * `cleanup()` stops them, deletes the queues and drops the database.
 */
export async function startTestSabt(opts: {
  roles: Role[]
  env?: Env
  config?: SabtConfig
  log?: Logger
  listen?: boolean
  tokenClock?: () => number
}): Promise<TestSabt> {
  const env = opts.env ?? testEnv()
  const config = opts.config ?? testConfig()
  const running = await startSabt({
    roles: opts.roles,
    env,
    config,
    log: opts.log ?? createLogger({ level: env.LOG_LEVEL }),
    migrate: true,
    listen: opts.listen ?? false,
    ...(opts.tokenClock ? { tokenClock: opts.tokenClock } : {}),
  })
  if (running.mq) await running.mq.waitForConnect()
  return {
    ...running,
    cleanup: async () => {
      await running.stop()
      await dropTopology(env, config)
      await dropDatabase(env.DATABASE_URL)
    },
  }
}

export async function dropTopology(env: Env, config: SabtConfig): Promise<void> {
  const conn = await amqp.connect(AMQP_URL)
  try {
    const ch = await conn.createChannel()
    await deleteTopology(ch, topologyOptions(env, config)).catch(() => {})
    await ch.close().catch(() => {})
  } finally {
    await conn.close().catch(() => {})
  }
}

/**
 * Drops what a CLI started with the shipped configuration declared: config/sabt.yaml's checks and
 * retry tiers (an eligibility check, 1m and 10m tiers), not testConfig's. `vars`: the environment the
 * file is read with.
 */
export async function dropShippedTopology(
  env: Env,
  vars: Record<string, string | undefined> = {},
): Promise<void> {
  await dropTopology(env, loadConfigFile(defaultConfigPath(), vars))
}

export async function dropDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1)
  const c = new pg.Client({ connectionString: PG_ADMIN_URL })
  await c.connect()
  try {
    await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)
  } finally {
    await c.end()
  }
}

/** Waits until `cond` holds (polling), or fails with `what`. Never a fixed sleep. */
export async function waitFor<T>(
  cond: () => Promise<T | false | null | undefined> | T | false | null | undefined,
  what: string,
  timeoutMs = 20_000,
  everyMs = 25,
): Promise<T> {
  const until = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await cond()
      if (v) return v as T
    } catch (err) {
      last = err
    }
    if (Date.now() > until)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

let seq = Math.floor(Math.random() * 1e6)
/** A valid, unique national id (9 digits from a counter, plus the check digit). */
export function nationalId(): string {
  seq = (seq + 7919) % 1_000_000_000
  const nine = String(100_000_000 + (seq % 899_999_999)).padStart(9, '0')
  return withCheckDigit(nine)
}

export function registration(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    campaign: 'demo',
    national_id: nationalId(),
    mobile: `0912${String(Math.floor(Math.random() * 1e7)).padStart(7, '0')}`,
    first_name: 'علی',
    last_name: 'رضایی',
    birth_date: '1990-03-21',
    ...overrides,
  }
}

/** Creates a partner API key and waits until the gateway has loaded it (it reloads every few seconds). */
export async function partnerKey(s: Running, recordsPerSecond = 100_000): Promise<string> {
  const { createApiKey } = await import('../../src/db/api-keys.js')
  const { createPool } = await import('../../src/db/pool.js')
  const pool = s.pool ?? createPool(s.env.DATABASE_URL, { max: 1, log: s.log, name: 'test' })
  const { key } = await createApiKey(pool, `test-${Date.now()}`, recordsPerSecond)
  if (pool !== s.pool) await pool.end()
  await waitFor(
    async () => {
      const r = await s.app.inject({
        method: 'POST',
        url: '/v1/registrations/batch',
        headers: { authorization: `Bearer ${key}` },
        payload: { records: [{}] },
      })
      return r.statusCode !== 401 && r.statusCode !== 503
    },
    'the gateway to load the partner key',
    15_000,
    100,
  )
  return key
}

/** Messages ready in a queue (passive declare). */
export async function queueDepth(queue: string): Promise<number> {
  const conn = await amqp.connect(AMQP_URL)
  try {
    const ch = await conn.createChannel()
    const r = await ch.checkQueue(queue)
    await ch.close()
    return r.messageCount
  } finally {
    await conn.close()
  }
}

/** Takes every message off a queue (the test's own) and returns the record ids they carry. */
export async function drainCheckIds(queue: string): Promise<string[]> {
  const { parseCheckMessage } = await import('../../src/mq/messages.js')
  const conn = await amqp.connect(AMQP_URL)
  try {
    const ch = await conn.createChannel()
    const ids: string[] = []
    for (;;) {
      const m = await ch.get(queue, { noAck: true })
      if (!m) break
      ids.push(...(parseCheckMessage(m.content)?.ids ?? []))
    }
    await ch.close()
    return ids
  } finally {
    await conn.close()
  }
}

/** A direct query against a test database. */
export async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    return (await c.query<T>(text, values)).rows
  } finally {
    await c.end()
  }
}

/** A version-1 intake message (one clear registration), as a gateway before group commit sent it. */
export function intakeMessage(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { campaign, national_id, mobile, first_name, last_name, birth_date } = registration()
  return {
    v: 1,
    id: uuidv7(),
    received_at: Date.now(),
    campaign,
    national_id,
    mobile,
    first_name,
    last_name,
    birth_date,
    attributes: null,
    ...overrides,
  }
}

/** Publishes raw intake messages as a gateway (or a redelivery) would: to shard 0, or to `exchange`. */
export async function publishIntake(
  s: Running,
  contents: (Record<string, unknown> | string)[],
  exchange?: string,
): Promise<void> {
  const conn = await amqp.connect(AMQP_URL)
  try {
    const ch = await conn.createConfirmChannel()
    for (const c of contents) {
      const body = Buffer.from(typeof c === 'string' ? c : JSON.stringify(c))
      ch.publish(exchange ?? s.mq!.names.intakeExchange, '0', body, { persistent: true, mandatory: true })
    }
    await ch.waitForConfirms()
  } finally {
    await conn.close()
  }
}

/**
 * `fn` with a started publisher of its own, as `sabt dead replay` makes one (closed after it,
 * whatever happens): what a test replaying dead letters needs.
 */
export async function withReplayPublisher<T>(
  mq: MqClient,
  fn: (deps: { mq: MqClient; publisher: Publisher; log: Logger }) => Promise<T>,
): Promise<T> {
  const log = createLogger({ level: 'silent' })
  const publisher = new Publisher(
    mq,
    { name: 'test-replay', confirmTimeoutMs: 3000, maxInFlight: 100 },
    new Metrics({ defaultMetrics: false }),
    log,
  )
  await publisher.start()
  try {
    return await fn({ mq, publisher, log })
  } finally {
    await publisher.close()
  }
}
