import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { classifyDbError, sqlState } from '../src/db/errors.js'
import { createPool } from '../src/db/pool.js'
import { errorAnswers } from '../src/http/error-answers.js'
import { createLogger } from '../src/observability/logger.js'
import { Metrics } from '../src/observability/metrics.js'
import { campaignRoutes } from '../src/roles/status/campaigns.js'
import { statusRoutes } from '../src/roles/status/routes.js'
import { startChecksSystem } from './support/checks.js'
import {
  dropDatabase,
  PG_ADMIN_URL,
  queueDepth,
  registration,
  sql,
  startTestSabt,
  type TestSabt,
  testConfig,
  testEnv,
  waitFor,
} from './support/harness.js'

// The database failing as a whole — a failover that leaves a read-only server behind, backends
// terminated by an administrator, a restart — must hold the work and never crash a role or spend
// a registration's delivery attempts (issue 16, items 2 and 10).

const dbName = (url: string) => new URL(url).pathname.slice(1)

/** Terminates every backend of the database (what a failover or `pg_terminate_backend` does). */
async function terminateBackends(url: string): Promise<number> {
  const rows = await sql<{ n: number }>(
    PG_ADMIN_URL,
    `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND pid <> pg_backend_pid()`,
    [dbName(url)],
  )
  return rows[0]!.n
}

/** New sessions of the database start read-only; existing ones are cut so they reconnect into it. */
async function setReadOnly(url: string, on: boolean): Promise<void> {
  const name = pg.escapeIdentifier(dbName(url))
  await sql(
    PG_ADMIN_URL,
    on
      ? `ALTER DATABASE ${name} SET default_transaction_read_only = on`
      : `ALTER DATABASE ${name} RESET default_transaction_read_only`,
  )
  await terminateBackends(url)
}

describe('the database failing as a whole', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('classifies errors by SQLSTATE, not by message text', async () => {
    const env = testEnv()
    await sql(PG_ADMIN_URL, `CREATE DATABASE ${pg.escapeIdentifier(dbName(env.DATABASE_URL))}`)
    cleanups.push(() => dropDatabase(env.DATABASE_URL))
    const c = new pg.Client({ connectionString: env.DATABASE_URL })
    await c.connect()
    cleanups.push(() => c.end())
    const failOn = (client: pg.Client, text: string) =>
      client.query(text).then(
        () => null,
        (err: unknown) => err,
      )
    const fail = (text: string) => failOn(c, text)
    await c.query("CREATE TABLE t (id int PRIMARY KEY, v text CHECK (v <> 'x'))")
    await c.query("INSERT INTO t VALUES (1, 'a')")
    expect(classifyDbError(await fail("INSERT INTO t VALUES (1, 'b')"))).toBe('data') // 23505
    expect(classifyDbError(await fail("INSERT INTO t VALUES (2, 'x')"))).toBe('data') // 23514
    expect(classifyDbError(await fail("SELECT 'nope'::int"))).toBe('data') // 22P02
    expect(classifyDbError(await fail('SELECT * FROM missing'))).toBe('unavailable') // 42P01: migration not applied
    expect(classifyDbError(await fail('SET statement_timeout = 1; SELECT pg_sleep(1)'))).toBe('unavailable') // 57014
    await c.query('RESET statement_timeout')
    expect(classifyDbError(await fail("BEGIN READ ONLY; INSERT INTO t VALUES (3, 'c')"))).toBe('unavailable') // 25006
    await c.query('ROLLBACK')
    expect(classifyDbError(await fail('SELECT 1/0'))).toBe('data') // 22012

    // 40001 and 40P01 for real, from two sessions on a table of their own.
    const c2 = new pg.Client({ connectionString: env.DATABASE_URL })
    await c2.connect()
    cleanups.push(() => c2.end())
    await c.query('CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL)')
    await c.query('INSERT INTO pair VALUES (1, 0), (2, 0)')
    // The first updates a row the second changed and committed after the first's snapshot.
    await c.query('BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT n FROM pair WHERE id = 1')
    await c2.query('BEGIN ISOLATION LEVEL SERIALIZABLE; UPDATE pair SET n = n + 1 WHERE id = 1; COMMIT')
    const serialization = await fail('UPDATE pair SET n = n + 1 WHERE id = 1')
    await c.query('ROLLBACK')
    expect(sqlState(serialization)).toBe('40001')
    expect(classifyDbError(serialization)).toBe('unavailable')
    // Each holds one row and asks for the other's; the second looks for the cycle first (100 ms).
    await c.query('BEGIN; UPDATE pair SET n = n + 1 WHERE id = 1')
    await c2.query("BEGIN; SET LOCAL deadlock_timeout = '100ms'; UPDATE pair SET n = n + 1 WHERE id = 2")
    const settled = await Promise.all([
      fail('UPDATE pair SET n = n + 1 WHERE id = 2'),
      failOn(c2, 'UPDATE pair SET n = n + 1 WHERE id = 1'),
    ])
    await c.query('ROLLBACK')
    await c2.query('ROLLBACK')
    const deadlocks = settled.filter((err) => err !== null)
    expect(deadlocks.map(sqlState)).toEqual(['40P01'])
    expect(classifyDbError(deadlocks[0])).toBe('unavailable')
    // Disk full and out of memory cannot be caused safely: the server's error, built with its code.
    for (const code of ['53100', '53200']) {
      const err = new pg.DatabaseError('insufficient resources', 0, 'error')
      err.code = code
      expect(classifyDbError(err), code).toBe('unavailable')
    }

    expect(classifyDbError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(
      'unavailable',
    )
    expect(classifyDbError(new Error('Connection terminated unexpectedly'))).toBe('unavailable')
    expect(classifyDbError(new TypeError('x is not a function'))).toBe('other')
  })

  it('a checked-out client whose backend is terminated does not end the process', async () => {
    const env = testEnv()
    await sql(PG_ADMIN_URL, `CREATE DATABASE ${pg.escapeIdentifier(dbName(env.DATABASE_URL))}`)
    cleanups.push(() => dropDatabase(env.DATABASE_URL))
    const pool = createPool(env.DATABASE_URL, { max: 2, log: createLogger({ level: 'silent' }), name: 't' })
    cleanups.push(() => pool.end())
    const client = await pool.connect()
    await client.query('BEGIN')
    const ended = new Promise((r) => client.once('end', r))
    expect(await terminateBackends(env.DATABASE_URL)).toBeGreaterThan(0)
    // On the old code the client emitted 'error' with no listener: an uncaught exception.
    await ended
    await expect(client.query('SELECT 1')).rejects.toThrow()
    client.release(true)
    expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1)
  })

  it('a read-only database (a failover’s aftermath) holds every 202’d registration, then records it', async () => {
    const s: TestSabt = await startTestSabt({ roles: ['gateway', 'recorder'], config: testConfig() })
    cleanups.push(() => s.cleanup())
    await setReadOnly(s.env.DATABASE_URL, true)
    cleanups.push(() => setReadOnly(s.env.DATABASE_URL, false).catch(() => {}))
    const ids: string[] = []
    for (let i = 0; i < 10; i++) {
      const r = await s.app.inject({ method: 'POST', url: '/v1/registrations', payload: registration() })
      expect(r.statusCode).toBe(202)
      ids.push(r.json().id)
    }
    // Long enough for the old code to spend the intake delivery limit (5) many times over.
    const until = Date.now() + 3000
    while (Date.now() < until) {
      expect(await queueDepth(s.mq!.names.intakeDead)).toBe(0)
      await new Promise((r) => setTimeout(r, 250))
    }
    await setReadOnly(s.env.DATABASE_URL, false)
    await waitFor(
      async () =>
        (
          await sql<{ n: number }>(
            s.env.DATABASE_URL,
            'SELECT count(*)::int AS n FROM registrations WHERE id = ANY($1)',
            [ids],
          )
        )[0]!.n === ids.length,
      'every registration recorded once writes are back',
      30_000,
      100,
    )
    expect(await queueDepth(s.mq!.names.intakeDead)).toBe(0)
  })

  it('backends terminated again and again under load: every role stays up, every 202 is recorded and checked', async () => {
    const sys = await startChecksSystem({ campaigns: { demo: { title: 'Demo', checks: ['identity'] } } })
    cleanups.push(() => sys.cleanup())
    const s = sys.sabt
    const ids: string[] = []
    let stop = false
    const load = (async () => {
      while (!stop) {
        const r = await s.app.inject({ method: 'POST', url: '/v1/registrations', payload: registration() })
        if (r.statusCode === 202) ids.push(r.json().id)
        await new Promise((r) => setImmediate(r))
      }
    })()
    for (let i = 0; i < 5; i++) {
      await waitFor(() => ids.length >= (i + 1) * 40, 'some load', 20_000, 10)
      await terminateBackends(s.env.DATABASE_URL)
    }
    stop = true
    await load
    await waitFor(
      async () => {
        const r = await sql<{ n: number }>(
          s.env.DATABASE_URL,
          `SELECT count(*)::int AS n FROM registrations WHERE id = ANY($1) AND status IN ('accepted', 'rejected')`,
          [ids],
        )
        return r[0]!.n === ids.length
      },
      'every 202 recorded and given its verdict',
      60_000,
      200,
    )
    const ready = await s.app.inject({ method: 'GET', url: '/readyz' })
    expect(ready.statusCode).toBe(200)
  })
})

describe('the HTTP answers while PostgreSQL cannot be reached', () => {
  it('status, campaign pages: 503 with Retry-After, never a 500 — the error answers map it for every route', async () => {
    const away = createPool('postgres://postgres@127.0.0.1:9/none', {
      max: 1,
      log: createLogger({ level: 'silent' }),
      name: 'away',
    })
    const app = Fastify()
    try {
      const config = testConfig()
      const metrics = new Metrics({ defaultMetrics: false })
      await app.register(errorAnswers)
      await app.register(statusRoutes, { pool: away, config, queuedWindowMs: 0 })
      await app.register(campaignRoutes, { pool: away, config, metrics, metricsEveryMs: 0 })
      for (const url of [`/v1/registrations/${randomUUID()}`, '/v1/campaigns/demo']) {
        const res = await app.inject({ method: 'GET', url })
        expect(res.statusCode, url).toBe(503)
        expect(res.headers['retry-after'], url).toBe('5')
        expect(res.json(), url).toMatchObject({ code: 'SABT_NOT_READY' })
      }
    } finally {
      await app.close()
      await away.end().catch(() => {})
    }
  })
})
