import { once } from 'node:events'
import { createServer } from 'node:http'
import amqp from 'amqplib'
import { Webhook } from 'standardwebhooks'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeCheckMessage } from '../src/mq/messages.js'
import { createLogger } from '../src/observability/logger.js'
import { lookupRegistration } from '../src/operations/index.js'
import { expectedVerdict, identityMatches } from '../src/roles/simulator/answers.js'
import { startSabt } from '../src/runtime/start.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { AMQP_URL, queueDepth, registration, sql, waitFor } from './support/harness.js'

type Reg = Record<string, string>

describe('checks', () => {
  const systems: ChecksSystem[] = []
  afterEach(async () => {
    for (const s of systems.splice(0)) await s.cleanup()
  })
  async function system(opts: Parameters<typeof startChecksSystem>[0] = {}): Promise<ChecksSystem> {
    const s = await startChecksSystem(opts)
    systems.push(s)
    return s
  }
  async function submit(
    s: ChecksSystem,
    n: number,
    overrides: Record<string, unknown> = {},
  ): Promise<{ id: string; reg: Reg }[]> {
    const out: { id: string; reg: Reg }[] = []
    for (let i = 0; i < n; i++) {
      const reg = registration(overrides) as Reg
      const res = await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
      expect(res.statusCode).toBe(202)
      out.push({ id: res.json<{ id: string }>().id, reg })
    }
    return out
  }
  // What an operator sees (attempts, latencies, errors): the public status shows less.
  const status = async (s: ChecksSystem, id: string) =>
    (await lookupRegistration(s.sabt.pool!, s.sabt.config, id, 600_000)) as unknown as {
      status: string
      checks: {
        check: string
        outcome: string
        attempts: number
        last_error: string | null
        latency_ms: number | null
      }[]
    }
  async function verdicts(s: ChecksSystem, ids: string[], timeoutMs = 30_000): Promise<Map<string, string>> {
    return waitFor(
      async () => {
        const rows = await sql<{ id: string; status: string }>(
          s.sabt.env.DATABASE_URL,
          'SELECT id::text, status FROM registrations WHERE id = ANY($1)',
          [ids],
        )
        return (
          rows.length === ids.length &&
          rows.every((r) => r.status === 'accepted' || r.status === 'rejected') &&
          new Map(rows.map((r) => [r.id, r.status]))
        )
      },
      `verdicts for ${ids.length} registrations`,
      timeoutMs,
      50,
    )
  }

  it('reaches exactly the verdicts the providers answer, never paying for mobile when identity failed', async () => {
    const s = await system()
    const subs = await submit(s, 60)
    const got = await verdicts(
      s,
      subs.map((x) => x.id),
    )
    for (const { id, reg } of subs) {
      const expected = expectedVerdict({ ...reg, campaign: 'demo' } as never)
      expect({ id, verdict: got.get(id) }).toEqual({ id, verdict: expected })
    }
    expect(new Set(got.values())).toEqual(new Set(['accepted', 'rejected'])) // both kinds occurred
    const stats = await s.stats()
    // Each registration asked once; a second call for one is only ever a retry the checker
    // recorded (a call that timed out on a busy machine), never a duplicate check message.
    expect(stats.identity!.calls - stats.identity!.repeated_keys).toBe(60)
    const [retries] = await sql<{ n: number }>(
      s.sabt.env.DATABASE_URL,
      "SELECT coalesce(sum(attempts - 1), 0)::int AS n FROM check_results WHERE check_name = 'identity'",
    )
    expect(stats.identity!.repeated_keys).toBe(retries!.n)
    // Mobile ownership (after: identity) was never asked for anyone whose identity failed.
    const askedMobile = s.sim.providers.get('mobile')!.keys
    const identityFailed = subs.filter(({ reg }) => !identityMatches(reg as never))
    expect(identityFailed.length).toBeGreaterThan(0)
    for (const { id } of identityFailed) expect(askedMobile.has(id)).toBe(false)
    expect(stats.mobile!.calls).toBeLessThanOrEqual(60 - identityFailed.length)
    // The status API shows each check with outcome, attempts and latency.
    const one = await status(s, subs[0]!.id)
    expect(one.checks.map((c) => c.check)).toEqual(['identity', 'mobile', 'eligibility'])
    const identity = one.checks.find((c) => c.check === 'identity')!
    expect(identity).toMatchObject({ attempts: 1 })
    expect(identity.latency_ms).toBeGreaterThanOrEqual(0)
  })

  it('retries a provider that times out, then succeeds', async () => {
    const s = await system({
      checks: { identity: { timeout_ms: 300 } },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
      knobs: { identity: { timeout_rate: 1 } },
    })
    const [sub] = await submit(s, 1)
    await waitFor(async () => {
      const st = await status(s, sub!.id)
      return (
        st.checks?.[0]?.attempts && st.checks[0].last_error?.includes('timeout') && st.status === 'verifying'
      )
    }, 'a timed-out attempt recorded')
    await s.knobs('identity', { timeout_rate: 0 })
    await verdicts(s, [sub!.id])
    const st = await status(s, sub!.id)
    expect(st.checks[0]!.attempts).toBeGreaterThanOrEqual(2)
    expect(['passed', 'failed']).toContain(st.checks[0]!.outcome)
    const retries = (await s.sabt.metrics.checkRetries.get()).values.filter(
      (v) => v.labels.reason === 'retry',
    )
    expect(retries.reduce((a, v) => a + v.value, 0)).toBeGreaterThanOrEqual(1)
  })

  it('opens the circuit on an outage, stops calling, and completes everything once the provider is back', async () => {
    const s = await system({
      checks: {
        identity: { max_attempts: 3, breaker: { consecutive_failures: 3, half_open_after_ms: 4000 } },
      },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
      knobs: { identity: { outage: true } },
    })
    const subs = await submit(s, 20)
    await waitFor(
      async () =>
        (await s.sabt.metrics.circuitState.get()).values.find((v) => v.labels.check === 'identity')?.value ===
        2,
      'the circuit to open',
    )
    await s.resetStats()
    // While open (4 s before the first probe): messages wait in the delay tiers, unasked.
    await waitFor(
      async () =>
        (await s.sabt.metrics.checkRetries.get()).values.some(
          (v) => v.labels.reason === 'circuit_open' && v.value >= 10,
        ),
      'messages parked',
      3000,
    )
    expect((await s.stats()).identity!.calls).toBe(0)
    await s.knobs('identity', { outage: false })
    await verdicts(
      s,
      subs.map((x) => x.id),
      40_000,
    )
    // No message spent its attempts on the open circuit: none reached the dead letters.
    expect(await queueDepth(s.sabt.mq!.names.dead)).toBe(0)
    expect(
      (await s.sabt.metrics.circuitState.get()).values.find((v) => v.labels.check === 'identity')?.value,
    ).toBe(0)
  })

  it('dead-letters a check that always fails, and a replay after the fix completes the verdict', async () => {
    const s = await system({
      checks: {
        eligibility: { max_attempts: 2, breaker: { consecutive_failures: 1000, half_open_after_ms: 1000 } },
      },
      campaigns: { demo: { title: 'Demo', checks: ['eligibility'] } },
      knobs: { eligibility: { error_rate: 1 } },
    })
    const subs = await submit(s, 3)
    const ids = subs.map((x) => x.id)
    // Dead-lettered together: the three records travel in the dead letters as one or more messages.
    await waitFor(async () => (await queueDepth(s.sabt.mq!.names.dead)) >= 1, 'dead letters')
    await waitFor(
      async () => (await Promise.all(ids.map((id) => status(s, id)))).every((st) => st.status === 'failed'),
      'records failed',
    )
    const st = await status(s, ids[0]!)
    expect(st.checks[0]).toMatchObject({
      check: 'eligibility',
      outcome: 'error',
      attempts: 2,
      last_error: 'provider answered 503',
    })

    // The dead letters, as an operator sees them; refused without the admin token.
    expect((await s.sabt.app.inject({ method: 'GET', url: '/admin/dead' })).statusCode).toBe(401)
    const auth = { authorization: `Bearer ${s.adminToken}` }
    const list = (await s.sabt.app.inject({ method: 'GET', url: '/admin/dead', headers: auth })).json()
    expect(list).toMatchObject({ total: 3, byCheck: { eligibility: 3 } })
    expect(list.queued).toBeGreaterThanOrEqual(1)
    expect(list.items.map((i: { registration_id: string }) => i.registration_id).sort()).toEqual(
      [...ids].sort(),
    )
    expect(
      (await s.sabt.app.inject({ method: 'POST', url: '/admin/dead/replay', payload: {} })).statusCode,
    ).toBe(401)

    await s.knobs('eligibility', { error_rate: 0 })
    const replay = await s.sabt.app.inject({
      method: 'POST',
      url: '/admin/dead/replay',
      headers: auth,
      payload: { check: 'eligibility' },
    })
    expect(replay.json()).toEqual({ replayed: 3, kept: 0, unreadable: 0, superseded: 0, unconfigured: 0 })
    const got = await verdicts(s, ids)
    for (const { id, reg } of subs)
      expect(got.get(id)).toBe(expectedVerdict({ ...reg, campaign: 'demo' } as never, ['eligibility']))
    expect(await queueDepth(s.sabt.mq!.names.dead)).toBe(0)
  })

  it('never calls a provider faster than its configured rate', async () => {
    const s = await system({
      checks: { identity: { rate_per_second: 20, concurrency: 16 } },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
    })
    const started = Date.now()
    const subs = await submit(s, 70)
    await verdicts(
      s,
      subs.map((x) => x.id),
      30_000,
    )
    const stats = await s.stats()
    expect(stats.identity!.calls).toBe(70)
    // GCRA at 20/s with a burst of 1: at most 21 calls start in any one second.
    expect(stats.identity!.max_calls_per_second).toBeLessThanOrEqual(21)
    expect(stats.identity!.max_calls_per_second).toBeGreaterThanOrEqual(15) // and the quota is used
    expect(Date.now() - started).toBeGreaterThan(3000)
  })

  it('keeps a check within its rate across several checker processes (the schedule is shared)', async () => {
    const s = await system({
      checks: { identity: { rate_per_second: 20, concurrency: 4 } },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
    })
    // Two more checker replicas on the same queues and database.
    const replicas = await Promise.all(
      [1, 2].map(() =>
        startSabt({
          roles: ['checker'],
          env: s.sabt.env,
          config: s.sabt.config,
          log: createLogger({ level: 'error' }),
          migrate: false,
          listen: false,
        }),
      ),
    )
    try {
      // In waves, so the recorder publishes several check messages for the replicas to share.
      const ids: string[] = []
      for (let wave = 0; wave < 6; wave++) {
        const subs = await submit(s, 15)
        ids.push(...subs.map((x) => x.id))
        await waitFor(
          async () =>
            (
              await sql<{ n: number }>(
                s.sabt.env.DATABASE_URL,
                'SELECT count(*)::int AS n FROM registrations WHERE id = ANY($1)',
                [subs.map((x) => x.id)],
              )
            )[0]!.n === 15,
          'wave recorded',
        )
      }
      await verdicts(s, ids, 30_000)
      const callsBy = await Promise.all(
        [s.sabt, ...replicas].map(async (p) =>
          (await p.metrics.checkAttempts.get()).values
            .filter(
              (v) => v.labels.check === 'identity' && ['passed', 'failed'].includes(String(v.labels.result)),
            )
            .reduce((a, v) => a + v.value, 0),
        ),
      )
      expect(callsBy.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2) // really shared out
      const stats = await s.stats()
      expect(stats.identity!.calls).toBe(90)
      // Three processes at 20/s each would reach 60 a second; together they stay at the check's 20
      // (plus the one token of burst a slice may start with).
      expect(stats.identity!.max_calls_per_second).toBeLessThanOrEqual(22)
    } finally {
      await Promise.all(replicas.map((r) => r.stop()))
    }
  })

  it('slows down on 429 without spending attempts', async () => {
    const s = await system({
      checks: { identity: { rate_per_second: 100, max_attempts: 2 } },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
      knobs: { identity: { rate_limit_per_s: 5 } },
    })
    const subs = await submit(s, 20)
    await verdicts(
      s,
      subs.map((x) => x.id),
      40_000,
    )
    expect((await s.stats()).identity!.rate_limited).toBeGreaterThan(0)
    const parked = (await s.sabt.metrics.checkRetries.get()).values.find(
      (v) => v.labels.reason === 'rate_limited',
    )
    expect(parked?.value).toBeGreaterThan(0)
    expect(await queueDepth(s.sabt.mq!.names.dead)).toBe(0) // max_attempts 2 would have killed them otherwise
  })

  it('does not call the provider again for a redelivered check message whose answer is stored', async () => {
    const s = await system({ campaigns: { demo: { title: 'Demo', checks: ['identity'] } } })
    const [sub] = await submit(s, 1)
    await verdicts(s, [sub!.id])
    expect((await s.stats()).identity!.calls).toBe(1)
    const conn = await amqp.connect(AMQP_URL)
    const ch = await conn.createConfirmChannel()
    for (let i = 0; i < 3; i++)
      ch.publish(
        s.sabt.mq!.names.checkExchange,
        'identity',
        encodeCheckMessage({ registration_id: sub!.id, check: 'identity', campaign: 'demo' }),
        {
          persistent: true,
        },
      )
    await ch.waitForConfirms()
    await conn.close()
    await waitFor(
      async () =>
        (await s.sabt.metrics.checkAttempts.get()).values.find((v) => v.labels.result === 'already_done')
          ?.value === 3,
      'the three redeliveries handled',
    )
    const stats = await s.stats()
    expect(stats.identity!.calls).toBe(1)
    expect(stats.identity!.repeated_keys).toBe(0)
  })

  it('reuses a cached answer for the same question within its TTL', async () => {
    const s = await system({
      checks: { identity: { cache_ttl_s: 3600 } },
      campaigns: { a: { title: 'A', checks: ['identity'] }, b: { title: 'B', checks: ['identity'] } },
    })
    const reg = registration({ campaign: 'a' })
    const first = await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
    await verdicts(s, [first.json<{ id: string }>().id])
    const second = await s.sabt.app.inject({
      method: 'POST',
      url: '/v1/registrations',
      payload: { ...reg, campaign: 'b' },
    })
    const id2 = second.json<{ id: string }>().id
    const got = await verdicts(s, [id2])
    expect(got.get(id2)).toBe(identityMatches(reg as never) ? 'accepted' : 'rejected')
    expect((await s.stats()).identity!.calls).toBe(1)
  })

  it('writes answers to the same question arriving together (one person, two campaigns, at once)', async () => {
    const s = await system({
      checks: { identity: { cache_ttl_s: 3600 } },
      campaigns: { a: { title: 'A', checks: ['identity'] }, b: { title: 'B', checks: ['identity'] } },
    })
    const reg = registration({ campaign: 'a' })
    const [r1, r2] = await Promise.all([
      s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg }),
      s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: { ...reg, campaign: 'b' } }),
    ])
    const ids = [r1!.json<{ id: string }>().id, r2!.json<{ id: string }>().id]
    const got = await verdicts(s, ids)
    const expected = identityMatches(reg as never) ? 'accepted' : 'rejected'
    expect([got.get(ids[0]!), got.get(ids[1]!)]).toEqual([expected, expected])
    const cache = await sql<{ n: number }>(
      s.sabt.env.DATABASE_URL,
      'SELECT count(*)::int AS n FROM check_cache',
    )
    expect(cache[0]!.n).toBe(1)
  })

  it('POSTs the final verdict to the campaign callback, signed, retrying until it is taken', async () => {
    const received: { body: string; headers: Record<string, string> }[] = []
    let calls = 0
    const receiver = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        calls++
        if (calls === 1) {
          res.writeHead(500).end()
          return
        }
        received.push({ body, headers: req.headers as Record<string, string> })
        res.writeHead(204).end()
      })
    })
    receiver.listen(0, '127.0.0.1')
    await once(receiver, 'listening')
    const port = (receiver.address() as { port: number }).port
    try {
      const s = await system({
        campaigns: {
          demo: { title: 'Demo', checks: ['identity'], callback_url: `http://127.0.0.1:${port}/verdicts` },
        },
        env: { SABT_CALLBACK_SECRET: 'test-callback-secret-0123456789' },
      })
      const [sub] = await submit(s, 1)
      const got = await verdicts(s, [sub!.id])
      await waitFor(() => received.length === 1, 'the callback to be taken')
      const body = JSON.parse(received[0]!.body)
      expect(body).toMatchObject({ id: sub!.id, campaign: 'demo', status: got.get(sub!.id) })
      // Standard Webhooks headers, verified by the ecosystem's own library (a raw, non-whsec_ secret).
      const wh = new Webhook('test-callback-secret-0123456789', { format: 'raw' })
      expect(() => wh.verify(received[0]!.body, received[0]!.headers)).not.toThrow()
      expect(received[0]!.headers['webhook-id']).toBe(`verdict_${sub!.id}`)
      const row = await waitFor(async () => {
        const r = await sql<{ callback_status: string; callback_attempts: number }>(
          s.sabt.env.DATABASE_URL,
          'SELECT callback_status, callback_attempts FROM registrations WHERE id = $1',
          [sub!.id],
        )
        return r[0]?.callback_status === 'sent' && r[0]
      }, 'callback recorded as sent')
      expect(row.callback_attempts).toBe(2)
    } finally {
      receiver.close()
    }
  })
})
