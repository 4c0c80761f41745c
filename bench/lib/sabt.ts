import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import amqp, { type Channel, type ChannelModel } from 'amqplib'
import pg from 'pg'
import { defaultConfigPath, loadConfigFile, type SabtConfig } from '../../src/config/campaigns.js'
import { loadEnv } from '../../src/config/env.js'
import { migrate } from '../../src/db/migrate.js'
import { createPool, type Pool } from '../../src/db/pool.js'
import { syncCampaigns } from '../../src/db/registrations.js'
import { parseIntakeMessage } from '../../src/mq/messages.js'
import {
  declareTopology,
  deleteTopology,
  shardKey,
  type TopologyNames,
  type TopologyOptions,
  topologyNames,
} from '../../src/mq/topology.js'
import { createLogger } from '../../src/observability/logger.js'
import { newKey } from '../../src/privacy/sealing.js'
import { shardOf } from '../../src/roles/gateway/intake.js'
import { topologyOptions } from '../../src/runtime/start.js'
import { freePort, type Proc, ROOT, spawnNode, waitReady } from './procs.js'

export const PG_ADMIN = process.env.SABT_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres'
export const AMQP = process.env.SABT_BENCH_AMQP ?? 'amqp://guest:guest@127.0.0.1:5672'

const quiet = createLogger({ level: 'warn' })

/**
 * One Sabt under test: its own database and queue prefix (the shared PostgreSQL and RabbitMQ serve
 * other engineers' tests too), roles started as separate `node dist/cli.js start --roles X`
 * processes, and a cleanup that drops the database and deletes the queues.
 */
/**
 * The environment the roles run with: this Sabt's own variables over the SABT_* tuning on the bench's
 * command line, which they inherit (SABT_INTAKE_SHARDS=4 declares four intake queues: the cleanup
 * must know them too).
 */
function roleEnv(env: Record<string, string>) {
  const tuning: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env))
    if (k.startsWith('SABT_') && !k.startsWith('SABT_BENCH_') && v !== undefined) tuning[k] = v
  return loadEnv({ ...tuning, ...env })
}

export class BenchSabt {
  readonly procs: Proc[] = []
  readonly names: TopologyNames
  /** What the roles declare (this Sabt's variables over the command line's tuning): declared, then deleted. */
  readonly #topology: TopologyOptions
  #conn: ChannelModel | null = null
  #ch: Channel | null = null
  readonly pool: pg.Pool

  private constructor(
    readonly tag: string,
    readonly env: Record<string, string>,
    readonly config: SabtConfig,
  ) {
    this.#topology = topologyOptions(roleEnv(env), config)
    this.names = topologyNames(this.#topology)
    this.pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 4 })
  }

  static async create(tag: string, extraEnv: Record<string, string> = {}): Promise<BenchSabt> {
    const id = `${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`
    const db = `bench_${tag}_${id}`
    const u = new URL(PG_ADMIN)
    u.pathname = `/${db}`
    const env: Record<string, string> = {
      DATABASE_URL: u.toString(),
      AMQP_URL: AMQP,
      SABT_MQ_PREFIX: `bench_${tag}_${id}`,
      SABT_CONFIG: process.env.SABT_CONFIG ?? join(ROOT, 'config', 'sabt.yaml'),
      SABT_DATA_KEYS: `k1:${newKey()}`,
      SABT_INDEX_KEY: newKey(),
      SABT_ADMIN_TOKEN: randomBytes(24).toString('base64url'),
      SABT_CALLBACK_SECRET: randomBytes(24).toString('base64url'),
      NODE_ENV: 'production',
      // Where personal data is sealed (decision 014): `SABT_SEAL_AT=gateway npm run bench` measures the other way.
      SABT_SEAL_AT: process.env.SABT_SEAL_AT ?? 'recorder',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      // The load driver is one address sending thousands of requests a second: no per-client limit.
      SABT_CLIENT_RATE: '0',
      ...extraEnv,
    }
    const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
    const s = new BenchSabt(tag, env, config)
    await migrate(env.DATABASE_URL!, quiet)
    const c = new pg.Client({ connectionString: env.DATABASE_URL })
    await c.connect()
    await syncCampaigns(c as unknown as pg.Pool, config.campaigns.values(), {
      citizenSms: config.sms !== null,
    })
    await c.end()
    s.#conn = await amqp.connect(AMQP)
    s.#ch = await s.#conn.createChannel()
    await declareTopology(s.#ch, s.#topology)
    return s
  }

  get dbName(): string {
    return new URL(this.env.DATABASE_URL!).pathname.slice(1)
  }

  /** Starts `sabt start --roles <roles>` as its own process and waits for /readyz. */
  async start(
    roles: string,
    opts: { env?: Record<string, string>; nodeArgs?: string[]; name?: string } = {},
  ): Promise<Proc & { url: string }> {
    const port = await freePort()
    const name = opts.name ?? `${this.tag}-${roles.replace(/,/g, '+')}`
    // SABT_BENCH_CLI: another build of Sabt (e.g. the commit before a change) for before/after runs.
    const cli = process.env.SABT_BENCH_CLI ?? join(ROOT, 'dist', 'cli.js')
    const p = spawnNode(name, [cli, 'start', '--roles', roles], {
      env: { ...this.env, PORT: String(port), ...opts.env },
      nodeArgs: opts.nodeArgs ?? [],
    })
    this.procs.push(p)
    const url = `http://127.0.0.1:${port}`
    await waitReady(`${url}/readyz`, p)
    return Object.assign(p, { url })
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()))
    this.procs.length = 0
  }

  /** Ready messages in a queue (passive declare; unacked deliveries are not counted). */
  async depth(queue: string): Promise<number> {
    return (await this.#ch!.checkQueue(queue)).messageCount
  }

  async intakeDepth(): Promise<number> {
    let n = 0
    for (const q of this.names.intakeQueues) n += await this.depth(q)
    return n
  }

  /**
   * How many registrations the intake queue(s) hold — a group-commit message (v3) carries many —
   * read by taking every message off (the caller purges afterwards anyway).
   */
  async takeIntakeRecords(): Promise<number> {
    let n = 0
    for (const q of this.names.intakeQueues)
      for (;;) {
        const m = await this.#ch!.get(q, { noAck: true })
        if (!m) break
        n += parseIntakeMessage(m.content)?.records.length ?? 0
      }
    return n
  }

  /**
   * Fills the intake queue(s) as fast as one confirmed publisher can (pipelined confirms, a bounded
   * window, persistent, mandatory): the backlog a recorder then drains. Also the broker's own
   * ceiling for the intake path — what a gateway cannot beat on this machine.
   */
  async fillIntake(
    messages: Iterable<{ id: string; campaign: string; nationalId: string; body: Buffer }>,
    window = 5000,
  ): Promise<{ published: number; seconds: number; per_s: number }> {
    const ch = await this.#conn!.createConfirmChannel()
    const shards = this.names.intakeQueues.length
    let inFlight = 0
    let published = 0
    let failed = 0
    let wake: (() => void) | null = null
    const t0 = performance.now()
    for (const m of messages) {
      while (inFlight >= window) await new Promise<void>((r) => (wake = r))
      inFlight++
      const ok = ch.publish(
        this.names.intakeExchange,
        shardKey(shardOf(m.campaign, m.nationalId, shards)),
        m.body,
        { persistent: true, mandatory: true, messageId: m.id, contentType: 'application/json' },
        (err: unknown) => {
          inFlight--
          if (err) failed++
          else published++
          if (wake && inFlight < window / 2) {
            const w = wake
            wake = null
            w()
          }
        },
      )
      if (!ok) await new Promise<void>((r) => ch.once('drain', () => r()))
    }
    while (inFlight > 0) await new Promise<void>((r) => (wake = r))
    const seconds = (performance.now() - t0) / 1000
    await ch.close()
    if (failed) throw new Error(`${failed} intake messages were not confirmed while filling the backlog`)
    return { published, seconds: Math.round(seconds * 100) / 100, per_s: Math.round(published / seconds) }
  }

  async purgeAll(): Promise<void> {
    const qs = [
      ...this.names.intakeQueues,
      this.names.intakeDead,
      this.names.dead,
      ...[...this.config.checks.keys()].map((c) => this.names.checkQueue(c)),
    ]
    for (const q of qs) await this.#ch!.purgeQueue(q)
  }

  async sql<T extends pg.QueryResultRow = Record<string, unknown>>(text: string, values: unknown[] = []) {
    return (await this.pool.query<T>(text, values)).rows
  }

  async truncate(): Promise<void> {
    await this.sql('TRUNCATE registrations, duplicates, waiting, check_results CASCADE')
  }

  /** PostgreSQL backends serving this database (their CPU is the database's share of a run). */
  async backendPids(): Promise<number[]> {
    const r = await this.sql<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [this.dbName],
    )
    return r.map((x) => x.pid)
  }

  async cleanup(): Promise<void> {
    await this.stopAll()
    try {
      await deleteTopology(this.#ch!, this.#topology)
    } catch {
      // a channel error closes the channel: retry on a fresh one
      try {
        const ch = await this.#conn!.createChannel()
        await deleteTopology(ch, this.#topology).catch(() => {})
      } catch {}
    }
    await this.#conn?.close().catch(() => {})
    await this.pool.end()
    await dropDatabase(this.dbName)
  }
}

/**
 * A fresh migrated database for a scenario that writes its rows straight in (no role runs, so the
 * intake is settled by construction: its watermark far ahead), dropped after `fn`.
 */
export async function withFreshDatabase<T>(tag: string, fn: (pool: Pool) => Promise<T>): Promise<T> {
  const log = createLogger({ level: 'warn' })
  const db = `bench_${tag}_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`
  const u = new URL(PG_ADMIN)
  u.pathname = `/${db}`
  await migrate(u.toString(), log)
  // A scenario's own setup writes up to millions of rows in one statement: minutes on a slow machine.
  const pool = createPool(u.toString(), { max: 2, log, name: `bench-${tag}`, queryTimeoutMs: 600_000 })
  try {
    await pool.query(`UPDATE intake_watermark SET settled_before = '2999-01-01T00:00:00Z'`)
    return await fn(pool)
  } finally {
    await pool.end()
    await dropDatabase(db)
  }
}

export async function dropDatabase(name: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN })
  await c.connect()
  try {
    await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)
  } finally {
    await c.end()
  }
}

export async function pgVersion(): Promise<string | null> {
  const c = new pg.Client({ connectionString: PG_ADMIN })
  try {
    await c.connect()
    return (await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v
  } catch {
    return null
  } finally {
    await c.end().catch(() => {})
  }
}
