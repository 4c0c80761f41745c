import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import amqp from 'amqplib'
import { afterEach, describe, expect, it } from 'vitest'
import { buildConfig, type SabtConfig } from '../src/config/campaigns.js'
import { recordAttempt, recordOutcomes } from '../src/db/checks.js'
import { migrate } from '../src/db/migrate.js'
import { createPool } from '../src/db/pool.js'
import { ATTEMPT_HEADER, encodeCheckBatch } from '../src/mq/messages.js'
import { Publisher } from '../src/mq/publisher.js'
import { CALLBACK } from '../src/mq/topology.js'
import { createLogger } from '../src/observability/logger.js'
import { replayDead } from '../src/operations/index.js'
import { identityMatches } from '../src/roles/simulator/answers.js'
import { buildSimulator, type Simulator } from '../src/roles/simulator/server.js'
import { type Running, startSabt } from '../src/runtime/start.js'
import {
  AMQP_URL,
  drainCheckIds,
  dropDatabase,
  queueDepth,
  registration,
  sql,
  startTestSabt,
  type TestSabt,
  testDatabaseUrl,
  testEnv,
  uniqueName,
  waitFor,
} from './support/harness.js'

// Issue 16, items 1, 3, 4 and the lock order of 7: every path a check or a callback takes ends
// in the right state in PostgreSQL — never a verdict from a configuration that does not know the
// campaign, never a callback left pending, never a record stuck behind a dead letter nobody booked.

const log = createLogger({ level: 'error' })
const quiet = { latency_median_ms: 2, latency_p99_ms: 5 }

/** A simulator on a real port, and the checks of the default three providers pointing at it. */
async function simulator(adminToken: string): Promise<{ sim: Simulator; url: string }> {
  const sim = await buildSimulator({
    log,
    adminToken,
    knobs: { identity: { ...quiet }, mobile: { ...quiet }, eligibility: { ...quiet } },
  })
  return { sim, url: await sim.listen({ host: '127.0.0.1', port: 0 }) }
}

function config(simUrl: string, campaigns: Record<string, unknown>): SabtConfig {
  const base = { timeout_ms: 1000, concurrency: 8, rate_per_second: 500, max_attempts: 4 }
  return buildConfig({
    retry_tiers: ['200ms', '500ms', '1s'],
    checks: {
      identity: { provider: 'identity', url: `${simUrl}/identity`, ...base },
      mobile: { provider: 'mobile', url: `${simUrl}/mobile`, ...base },
      eligibility: { provider: 'eligibility', url: `${simUrl}/eligibility`, ...base },
    },
    campaigns,
  })
}

/** A registration the identity simulator will pass (or fail). */
function personWhoseIdentity(passes: boolean): Record<string, string> {
  for (;;) {
    const r = registration() as Record<string, string>
    if (identityMatches(r as never) === passes) return r
  }
}

async function statuses(url: string, ids: string[]): Promise<Map<string, string>> {
  const rows = await sql<{ id: string; status: string }>(
    url,
    'SELECT id::text, status FROM registrations WHERE id = ANY($1)',
    [ids],
  )
  return new Map(rows.map((r) => [r.id, r.status]))
}

async function submit(s: Running, n: number, overrides: Record<string, unknown> = {}): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/registrations',
      payload: registration(overrides),
    })
    expect(res.statusCode).toBe(202)
    ids.push(res.json<{ id: string }>().id)
  }
  return ids
}

/** A verdict callback receiver: every POST it took, by id, with its idempotency key. */
async function receiver(delayMs = 0): Promise<{
  server: Server
  url: string
  got: { id: string; key: string }[]
  close(): Promise<void>
}> {
  const got: { id: string; key: string }[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      got.push({ id: JSON.parse(body).id, key: String(req.headers['idempotency-key']) })
      setTimeout(() => res.writeHead(204).end(), delayMs)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/verdicts`
  return { server, url, got, close: () => new Promise((r) => server.close(() => r())) }
}

async function withChannel<T>(fn: (ch: amqp.ConfirmChannel) => Promise<T>): Promise<T> {
  const conn = await amqp.connect(AMQP_URL)
  try {
    return await fn(await conn.createConfirmChannel())
  } finally {
    await conn.close().catch(() => {})
  }
}

/** Takes a queue's messages and rejects each with requeue until RabbitMQ dead-letters them (its delivery limit). */
async function exhaustDeliveryLimit(queue: string): Promise<number> {
  return withChannel(async (ch) => {
    let rejected = 0
    for (;;) {
      const m = await ch.get(queue, { noAck: false })
      if (!m) return rejected
      ch.reject(m, true) // basic.reject counts toward the delivery limit on every RabbitMQ version
      rejected++
      if (rejected > 500) throw new Error('the delivery limit never dead-lettered the message')
    }
  })
}

describe('checker: every path ends in the right state', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  async function pipeline(opts: {
    roles: Running['roles']
    campaigns: Record<string, unknown>
    env?: Record<string, string>
  }): Promise<{ s: TestSabt; sim: Simulator; simUrl: string; config: SabtConfig; adminToken: string }> {
    const env = testEnv({ SABT_CALLBACK_SECRET: 'test-callback-secret-0123456789', ...opts.env })
    const { sim, url } = await simulator(env.SABT_ADMIN_TOKEN!)
    cleanups.push(() => sim.close())
    const cfg = config(url, opts.campaigns)
    const s = await startTestSabt({ roles: [...opts.roles], env, config: cfg })
    cleanups.push(() => s.cleanup())
    return { s, sim, simUrl: url, config: cfg, adminToken: env.SABT_ADMIN_TOKEN! }
  }

  async function checker(s: Running, cfg: SabtConfig, env: Record<string, string> = {}): Promise<Running> {
    const c = await startSabt({
      roles: ['checker'],
      env: { ...s.env, ...env } as Running['env'],
      config: cfg,
      log,
      migrate: false,
      listen: false,
    })
    cleanups.push(() => c.stop())
    return c
  }

  const simStats = async (simUrl: string, token: string) =>
    (await (
      await fetch(`${simUrl}/admin/stats`, { headers: { authorization: `Bearer ${token}` } })
    ).json()) as Record<string, { calls: number }>

  // Item 1: fails on the old code — the checker without the campaign dead-lettered the messages
  // at once and recomputed the verdict with no required checks: `accepted`, identity in `error`.
  it('a checker whose configuration lacks the campaign holds its checks (no verdict, shown on the dashboard); the right checker decides them', async () => {
    const {
      s,
      simUrl,
      config: full,
      adminToken,
    } = await pipeline({
      roles: ['gateway', 'recorder', 'status'],
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
    })
    const lacking = config(simUrl, { other: { title: 'Other', checks: ['identity'] } })
    const stale = await checker(s, lacking)
    const ids = await submit(s, 6)
    const url = s.env.DATABASE_URL
    await waitFor(async () => {
      const held = ((await stale.metrics.checksHeld?.get())?.values ?? [])
        .filter((v) => v.labels.campaign === 'demo' && v.labels.check === 'identity')
        .reduce((a, v) => a + v.value, 0)
      const st = await statuses(url, ids)
      return held >= ids.length || [...st.values()].some((x) => x !== 'recorded')
    }, 'the checker without the campaign to take the messages')
    // Held, not decided: no verdict, no check result, nothing dead-lettered.
    expect([...(await statuses(url, ids)).values()]).toEqual(ids.map(() => 'recorded'))
    expect(await sql(url, 'SELECT * FROM check_results WHERE registration_id = ANY($1)', [ids])).toEqual([])
    expect(await queueDepth(s.mq!.names.dead)).toBe(0)
    expect((await simStats(simUrl, adminToken)).identity!.calls).toBe(0)
    // The dashboard says which campaign is held, for which check, and why.
    const auth = { authorization: `Bearer ${adminToken}` }
    await waitFor(async () => {
      const live = (await s.app.inject({ method: 'GET', url: '/admin/live', headers: auth })).json<{
        held?: { check: string; campaign: string; reason: string; records: number }[]
      }>()
      return live.held?.some((h) => h.campaign === 'demo' && h.check === 'identity' && h.records > 0)
    }, 'the held campaign on the dashboard')
    const fragment = await s.app.inject({
      method: 'GET',
      url: '/dashboard/fragments/providers',
      headers: auth,
    })
    expect(fragment.body).toContain('data-hint="held"')
    expect(fragment.body).toContain('demo')

    // The checker with the right configuration takes over: every verdict is the providers' answer.
    await stale.stop()
    await checker(s, full)
    const got = await waitFor(async () => {
      const st = await statuses(url, ids)
      return [...st.values()].every((x) => x === 'accepted' || x === 'rejected') && st
    }, 'verdicts from the configured checker')
    const regs = await sql<{ id: string; first_name: string; last_name: string; birth_date: string }>(
      url,
      `SELECT id::text, first_name, last_name, to_char(birth_date, 'YYYY-MM-DD') AS birth_date FROM registrations WHERE id = ANY($1)`,
      [ids],
    )
    expect(regs.length).toBe(ids.length)
    const checks = await sql<{ id: string; outcome: string }>(
      url,
      `SELECT registration_id::text AS id, outcome FROM check_results WHERE registration_id = ANY($1) AND check_name = 'identity'`,
      [ids],
    )
    // accepted ⇔ identity passed; nothing decided from an error.
    for (const c of checks)
      expect({ id: c.id, status: got.get(c.id) }).toEqual({
        id: c.id,
        status: c.outcome === 'passed' ? 'accepted' : 'rejected',
      })
    expect(checks.every((c) => c.outcome === 'passed' || c.outcome === 'failed')).toBe(true)
  })

  // Item 1 (replay): fails on the old code — resetForReplay with no required checks turned the
  // failed records into `accepted`.
  it('a replay by a process whose configuration lacks the campaign leaves the dead letters where they are', async () => {
    const env = { SABT_CHECKS: 'identity' }
    const {
      s,
      simUrl,
      config: full,
    } = await pipeline({
      roles: ['gateway', 'recorder', 'checker', 'status'],
      campaigns: { demo: { title: 'Demo', checks: ['eligibility'] } },
      env,
    })
    // Eligibility is served by nobody here: its messages are dead-lettered by hand below, the way
    // the checker does after the last attempt.
    const ids = await submit(s, 3)
    const names = s.mq!.names
    await waitFor(async () => (await queueDepth(names.checkQueue('eligibility'))) >= 1, 'eligibility queued')
    expect(await exhaustDeliveryLimit(names.checkQueue('eligibility'))).toBeGreaterThan(0)
    const url = s.env.DATABASE_URL
    await sql(
      url,
      `INSERT INTO check_results (registration_id, check_name, outcome, attempts, last_error)
       SELECT id, 'eligibility', 'error', 4, 'provider answered 503' FROM registrations WHERE id = ANY($1)
       ON CONFLICT (registration_id, check_name) DO UPDATE SET outcome = 'error'`,
      [ids],
    )
    await sql(url, `UPDATE registrations SET status = 'failed' WHERE id = ANY($1)`, [ids])
    await waitFor(async () => (await queueDepth(names.dead)) >= 1, 'the dead letters')
    const depth = await queueDepth(names.dead)

    const publisher = new Publisher(
      s.mq!,
      { name: 'test-replay', confirmTimeoutMs: 3000, maxInFlight: 100 },
      s.metrics,
      log,
    )
    await publisher.start()
    cleanups.push(() => publisher.close())
    const lacking = config(simUrl, { other: { title: 'Other', checks: ['eligibility'] } })
    const result = await replayDead({ mq: s.mq!, pool: s.pool!, publisher, config: lacking, log })
    expect(result).toMatchObject({ replayed: 0, unconfigured: ids.length })
    expect([...(await statuses(url, ids)).values()]).toEqual(ids.map(() => 'failed'))
    expect(await queueDepth(names.dead)).toBe(depth)
    expect(await queueDepth(names.checkQueue('eligibility'))).toBe(0)

    // With the campaign configured, the same replay goes through.
    const ok = await replayDead({ mq: s.mq!, pool: s.pool!, publisher, config: full, log })
    expect(ok).toMatchObject({ replayed: ids.length, unconfigured: 0 })
    expect([...(await statuses(url, ids)).values()]).toEqual(ids.map(() => 'verifying'))
    expect((await drainCheckIds(names.checkQueue('eligibility'))).sort()).toEqual([...ids].sort())
  })

  // Item 3: fails on the old code — the redelivered check found its answer stored and the verdict
  // already final, so nothing ever sent the callback; the row stayed `pending`.
  it('a callback left pending by a checker that died after the commit is sent by the sweeper, once', async () => {
    const rx = await receiver()
    cleanups.push(() => rx.close())
    const campaigns = { demo: { title: 'Demo', checks: ['identity'], callback_url: rx.url } }
    const {
      s,
      simUrl,
      config: cfg,
      adminToken,
    } = await pipeline({
      roles: ['gateway', 'recorder', 'status'],
      campaigns,
      env: { SABT_CALLBACK_SWEEP_MS: '200', SABT_CALLBACK_LEASE_MS: '1000' },
    })
    const [id] = await submit(s, 1)
    const url = s.env.DATABASE_URL
    await waitFor(async () => (await statuses(url, [id!])).get(id!) === 'recorded', 'recorded')
    // What a checker leaves behind when it dies right after committing the answer and the verdict:
    // the check message still unacked in its queue (redelivered), the callback marked pending,
    // and no callback message anywhere.
    await sql(
      url,
      `INSERT INTO check_results (registration_id, check_name, outcome, attempts, finished_at) VALUES ($1, 'identity', 'passed', 1, now())`,
      [id],
    )
    await sql(
      url,
      `UPDATE registrations SET status = 'accepted', verdict_at = now(), callback_status = 'pending' WHERE id = $1`,
      [id],
    )
    await checker(s, cfg)
    await waitFor(() => rx.got.length >= 1, 'the callback to be delivered', 15_000)
    await waitFor(
      async () =>
        (
          await sql<{ c: string }>(url, 'SELECT callback_status AS c FROM registrations WHERE id = $1', [id])
        )[0]?.c === 'sent',
      'the callback recorded as sent',
    )
    expect(rx.got).toEqual([{ id, key: `${id}:verdict` }])
    // The redelivered check did not ask the provider again.
    expect((await simStats(simUrl, adminToken)).identity!.calls).toBe(0)
  })

  // Item 3, exactly once: fails without the send claim (migration 0016) — both messages read the
  // callback `pending` before either POST came back, and the receiver got it twice.
  it('two messages for one pending callback, handled at the same moment, POST it once', async () => {
    const rx = await receiver(400) // slow: the two sends would overlap
    cleanups.push(() => rx.close())
    const campaigns = { demo: { title: 'Demo', checks: ['identity'], callback_url: rx.url } }
    const { s, config: cfg } = await pipeline({
      roles: ['gateway', 'recorder', 'status'],
      campaigns,
      env: { SABT_CALLBACK_SWEEP_MS: '600000' }, // no sweeper copy: the two messages below are the race
    })
    const [id] = await submit(s, 1)
    const url = s.env.DATABASE_URL
    await waitFor(async () => (await statuses(url, [id!])).get(id!) === 'recorded', 'recorded')
    await sql(
      url,
      `UPDATE registrations SET status = 'accepted', verdict_at = now(), callback_status = 'pending' WHERE id = $1`,
      [id],
    )
    const names = s.mq!.names
    // The original and a copy (the sweeper's, a replay's), both waiting when the checker starts.
    await withChannel(async (ch) => {
      for (const copy of ['original', 'copy'])
        ch.publish(
          names.checkExchange,
          CALLBACK,
          encodeCheckBatch({ check: CALLBACK, campaign: 'demo', ids: [id!] }),
          { persistent: true, messageId: `${id}-${copy}`, headers: { [ATTEMPT_HEADER]: 0 } },
        )
      await ch.waitForConfirms()
    })
    await checker(s, cfg)
    await waitFor(async () => (await queueDepth(names.callbackQueue)) === 0, 'both messages taken')
    await waitFor(
      async () =>
        (
          await sql<{ c: string }>(url, 'SELECT callback_status AS c FROM registrations WHERE id = $1', [id])
        )[0]?.c === 'sent',
      'the callback recorded as sent',
    )
    await new Promise((r) => setTimeout(r, 1000)) // a second POST would have arrived by now
    expect(rx.got).toEqual([{ id, key: `${id}:verdict` }])
  })

  // Item 3 (publish fails): fails on the old code — the check message was requeued whole, its
  // redelivery found the verdict final and emitted no callback.
  it('a callback whose publish fails is still delivered once the callback queue takes messages again', async () => {
    const rx = await receiver()
    cleanups.push(() => rx.close())
    const { s } = await pipeline({
      roles: ['gateway', 'recorder', 'checker', 'status'],
      campaigns: { demo: { title: 'Demo', checks: ['identity'], callback_url: rx.url } },
    })
    const names = s.mq!.names
    // No route to the callback queue: every callback publish is returned (a confirm without a queue).
    await withChannel((ch) => ch.unbindQueue(names.callbackQueue, names.checkExchange, CALLBACK))
    const [id] = await submit(s, 1)
    const url = s.env.DATABASE_URL
    await waitFor(async () => {
      const r = await sql<{ status: string; c: string | null }>(
        url,
        'SELECT status, callback_status AS c FROM registrations WHERE id = $1',
        [id],
      )
      return r[0]?.c === 'pending' && ['accepted', 'rejected'].includes(r[0].status)
    }, 'the verdict, with its callback pending')
    const returned = async () =>
      (await s.metrics.publishConfirms.get()).values
        .filter((v) => v.labels.publisher === 'checker' && v.labels.result === 'returned')
        .reduce((a, v) => a + v.value, 0)
    await waitFor(async () => (await returned()) >= 2, 'callback publishes refused')
    await withChannel((ch) => ch.bindQueue(names.callbackQueue, names.checkExchange, CALLBACK))
    await waitFor(() => rx.got.length >= 1, 'the callback to be delivered', 20_000)
    await waitFor(
      async () =>
        (
          await sql<{ c: string }>(url, 'SELECT callback_status AS c FROM registrations WHERE id = $1', [id])
        )[0]?.c === 'sent',
      'the callback recorded as sent',
    )
    expect(rx.got).toEqual([{ id, key: `${id}:verdict` }])
  })

  // Item 4: fails on the old code — RabbitMQ dead-lettered the check message itself, nobody booked
  // it: the record stayed `recorded`, no `error`, absent from the dead-letter list.
  it('a check message RabbitMQ dead-letters by its delivery limit is booked: error, verdict recomputed, listed, replayable', async () => {
    const { s, adminToken } = await pipeline({
      roles: ['gateway', 'recorder', 'checker', 'status'],
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
      env: { SABT_CHECKS: 'eligibility' }, // nobody here consumes identity: the test plays the failing consumer
    })
    const names = s.mq!.names
    const ids = await submit(s, 2)
    const url = s.env.DATABASE_URL
    await waitFor(async () => (await queueDepth(names.checkQueue('identity'))) >= 1, 'identity queued')
    await waitFor(async () => (await statuses(url, ids)).size === 2, 'recorded')
    expect(await exhaustDeliveryLimit(names.checkQueue('identity'))).toBeGreaterThanOrEqual(20)
    await waitFor(
      async () => [...(await statuses(url, ids)).values()].every((st) => st === 'failed'),
      'the records failed (their check dead-lettered)',
    )
    const results = await sql<{ outcome: string; last_error: string }>(
      url,
      `SELECT outcome, last_error FROM check_results WHERE registration_id = ANY($1) AND check_name = 'identity'`,
      [ids],
    )
    expect(results.map((r) => r.outcome)).toEqual(['error', 'error'])
    expect(results[0]!.last_error).toMatch(/delivery limit/)
    const list = (
      await s.app.inject({
        method: 'GET',
        url: '/admin/dead',
        headers: { authorization: `Bearer ${adminToken}` },
      })
    ).json<{ total: number; byCheck: Record<string, number>; items: { registration_id: string }[] }>()
    expect(list).toMatchObject({ total: 2, byCheck: { identity: 2 } })
    expect(list.items.map((i) => i.registration_id).sort()).toEqual([...ids].sort())
    await waitFor(async () => (await queueDepth(names.dead)) >= 1, 'the message kept in the dead letters')
    const replay = await s.app.inject({
      method: 'POST',
      url: '/admin/dead/replay',
      headers: { authorization: `Bearer ${adminToken}` },
      payload: { check: 'identity' },
    })
    expect(replay.json()).toMatchObject({ replayed: 2, kept: 0 })
    expect([...(await statuses(url, ids)).values()]).toEqual(['verifying', 'verifying'])
    expect((await drainCheckIds(names.checkQueue('identity'))).sort()).toEqual([...ids].sort())
  })

  // Item 4 (callbacks): fails on the old code — a callback message dead-lettered by RabbitMQ left
  // the row `pending`, in no list.
  it('a callback message RabbitMQ dead-letters by its delivery limit is booked as a dead callback', async () => {
    const rx = await receiver()
    cleanups.push(() => rx.close())
    const { s, adminToken } = await pipeline({
      roles: ['gateway', 'recorder', 'checker', 'status'],
      campaigns: { demo: { title: 'Demo', checks: ['identity'], callback_url: rx.url } },
    })
    const names = s.mq!.names
    // The callback worker stops: the test plays a callback consumer that keeps failing.
    const callbackWorker = s.checker!.workers.find((w) => w.task.name === CALLBACK)!
    await callbackWorker.stop()
    const [id] = await submit(s, 1)
    const url = s.env.DATABASE_URL
    await waitFor(async () => (await queueDepth(names.callbackQueue)) >= 1, 'the callback queued')
    expect(await exhaustDeliveryLimit(names.callbackQueue)).toBeGreaterThanOrEqual(20)
    await waitFor(
      async () =>
        (
          await sql<{ c: string }>(url, 'SELECT callback_status AS c FROM registrations WHERE id = $1', [id])
        )[0]?.c === 'error',
      'the callback booked as dead',
    )
    const list = (
      await s.app.inject({
        method: 'GET',
        url: '/admin/dead',
        headers: { authorization: `Bearer ${adminToken}` },
      })
    ).json<{ byCheck: Record<string, number> }>()
    expect(list.byCheck).toMatchObject({ callback: 1 })
    expect(rx.got).toEqual([])
  })

  // Item 4 (partial publishes): fails on the old code — one refused follow-up requeued the whole
  // message, and every redelivery published the follow-ups that had already gone (duplicate chains).
  it('a message whose follow-ups partly went is not moved again: only the refused one is retried', async () => {
    const { s, simUrl, adminToken } = await pipeline({
      roles: ['gateway', 'recorder', 'checker', 'status'],
      campaigns: {
        demo: {
          title: 'Demo',
          checks: [
            'identity',
            { name: 'mobile', after: ['identity'] },
            { name: 'eligibility', after: ['identity'] },
          ],
        },
      },
      env: { SABT_CHECKS: 'identity' }, // mobile and eligibility are only queued, for the test to count
    })
    const names = s.mq!.names
    await withChannel((ch) => ch.unbindQueue(names.checkQueue('mobile'), names.checkExchange, 'mobile'))
    const reg = personWhoseIdentity(true)
    const res = await s.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
    const id = res.json<{ id: string }>().id
    const returned = async () =>
      (await s.metrics.publishConfirms.get()).values
        .filter((v) => v.labels.publisher === 'checker' && v.labels.result === 'returned')
        .reduce((a, v) => a + v.value, 0)
    await waitFor(async () => (await returned()) >= 3, 'the mobile follow-up refused three times')
    await withChannel((ch) => ch.bindQueue(names.checkQueue('mobile'), names.checkExchange, 'mobile'))
    const identityWorker = s.checker!.workers.find((w) => w.task.name === 'identity')!
    await waitFor(
      async () => (await queueDepth(names.checkQueue('mobile'))) >= 1 && identityWorker.inFlight === 0,
      'the mobile follow-up queued and the identity message settled',
    )
    const elig = await drainCheckIds(names.checkQueue('eligibility'))
    expect(elig).toEqual([id]) // asked once, not once per redelivery
    expect(await drainCheckIds(names.checkQueue('mobile'))).toEqual([id])
    expect((await simStats(simUrl, adminToken)).identity!.calls).toBe(1)
  })

  // Item 7: fails on the old code with a deadlock (40P01) — recordAttempt locked the check result
  // before the record, recordOutcomes the record before the check result.
  it('recordAttempt and recordOutcomes on the same record take their locks in the same order (no deadlock)', async () => {
    const url = testDatabaseUrl(uniqueName('db'))
    await migrate(url, log)
    cleanups.push(() => dropDatabase(url))
    const pool = createPool(url, { max: 4, log, name: 'test-locks' })
    cleanups.push(() => pool.end())
    const id = '01890000-0000-7000-8000-000000000001'
    await pool.query(
      `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id, received_at, status)
       VALUES ($1, 'demo', '\\x01', '\\x02', '\\x03', 'k1', now(), 'verifying')`,
      [id],
    )
    // Verifying (another check is under way); a duplicate chain brings two messages of identity at
    // once, its first answer and its first retry, and no identity row exists yet.
    const required = [{ name: 'identity', after: [] }]
    const waiting = async () =>
      (
        await sql<{ n: number }>(
          url,
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`,
          [new URL(url).pathname.slice(1)],
        )
      )[0]!.n
    // A third transaction holds the record, so both writers queue up behind it in a known order.
    const holder = createPool(url, { max: 1, log, name: 'test-holder' })
    cleanups.push(() => holder.end())
    const h = await holder.connect()
    cleanups.push(async () => {
      await h.query('ROLLBACK').catch(() => {})
      h.release()
    })
    await h.query('BEGIN')
    await h.query('SELECT 1 FROM registrations WHERE id = $1 FOR UPDATE', [id])
    const answer = recordOutcomes(pool, [
      {
        id,
        check: 'identity',
        outcome: 'passed',
        attempts: 2,
        latencyMs: 5,
        detail: null,
        required,
        hasCallback: false,
        maxRecordsPerPerson: 3,
      },
    ]).then(
      () => 'ok',
      (e: { code?: string }) => `error ${e.code}`,
    )
    await waitFor(async () => (await waiting()) === 1, 'the answer waiting for the record')
    const retry = recordAttempt(pool, id, 'identity', 2, 'timeout').then(
      () => 'ok',
      (e: { code?: string }) => `error ${e.code}`,
    )
    await waitFor(async () => (await waiting()) === 2, 'the retry waiting too')
    await h.query('COMMIT')
    expect(await Promise.all([answer, retry])).toEqual(['ok', 'ok'])
    const row = await sql<{ outcome: string; status: string }>(
      url,
      `SELECT c.outcome, r.status FROM check_results c JOIN registrations r ON r.id = c.registration_id WHERE r.id = $1`,
      [id],
    )
    expect(row).toEqual([{ outcome: 'passed', status: 'accepted' }])
  })
})
