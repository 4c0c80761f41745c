import { once } from 'node:events'
import { createServer } from 'node:http'
import { afterAll, describe, expect, it } from 'vitest'
import { commitDraw, drawLottery, releasePlace } from '../src/db/draws.js'
import { type DrawResults, verifyResults } from '../src/domain/draw.js'
import { mobileMatches } from '../src/roles/simulator/answers.js'
import { refreshScarceMetrics } from '../src/roles/status/campaigns.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { registration, sql, waitFor } from './support/harness.js'

interface Callback {
  key: string
  body: { id: string; status: string; allocation?: { state: string; position?: number } }
}

async function receiver() {
  const got: Callback[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      got.push({ key: String(req.headers['idempotency-key']), body: JSON.parse(body) })
      res.writeHead(204).end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/verdicts`
  return { got, url, close: () => new Promise<void>((r) => server.close(() => r())) }
}

// The whole path: gateway → broker → recorder → checker (mobile, simulated) → status API,
// verdict callbacks, the draw, the public pages, a release and the new winner's callback.
describe('a lottery end to end', () => {
  let s: ChecksSystem | undefined
  let rx: Awaited<ReturnType<typeof receiver>> | undefined
  afterAll(async () => {
    await s?.cleanup()
    await rx?.close()
  })

  it('registrations checked through the pipeline are drawn, verifiable, and their allocation shown and called back', async () => {
    rx = await receiver()
    const closes = Date.now() + 120_000
    s = await startChecksSystem({
      sms: {},
      campaigns: {
        lot: {
          title: 'Cars',
          checks: ['mobile'],
          capacity: 3,
          allocation: 'lottery',
          opens_at: '2026-01-01T00:00:00Z',
          closes_at: new Date(closes).toISOString(),
          draw_at: new Date(closes + 1000).toISOString(),
          callback_url: rx.url,
        },
        // Nobody registers for it: its row on the dashboard shows how far the intake watermark is.
        fc: { title: 'First come', capacity: 1, allocation: 'first_come' },
      },
      env: {
        SABT_CALLBACK_SECRET: 'test-callback-secret-0123456789',
        SABT_CALLBACK_SWEEP_MS: '200',
        SABT_CALLBACK_LEASE_MS: '1000',
        SABT_SMS_SWEEP_MS: '200',
      },
    })
    const sms = (ref: string) => s!.sim.sms.delivered.get(ref)
    const WON = 'سهمیه به شما رسید'
    const WAITING = 'فهرست انتظار'
    const app = s.sabt.app
    const url = s.sabt.env.DATABASE_URL
    const pool = s.sabt.pool!
    const campaign = s.sabt.config.campaigns.get('lot')!
    await commitDraw(pool, 'lot', 'test') // (before opening, in real life: sabt draw commit)
    const page0 = (await app.inject({ method: 'GET', url: '/v1/campaigns/lot' })).json()
    expect(page0).toMatchObject({ capacity: 3, allocation: 'lottery', draw: { state: 'committed' } })
    expect(page0.draw.commitment).toMatch(/^[0-9a-f]{64}$/)
    expect((await app.inject({ method: 'GET', url: '/v1/campaigns/lot/results' })).statusCode).toBe(404)

    // Eight people, one of whom the mobile check rejects, one who submits twice.
    // At least one rejected, and at least five accepted (three winners, a waiting list): with
    // eight random people and a 10 % rejection both hold almost always, not always.
    const people = Array.from({ length: 8 }, () => registration({ campaign: 'lot' }))
    while (
      people.filter((p) => !mobileMatches(p as never)).length === 0 ||
      people.filter((p) => mobileMatches(p as never)).length < 5
    )
      people.push(registration({ campaign: 'lot' }))
    const submit = async (body: Record<string, unknown>) => {
      const r = await app.inject({ method: 'POST', url: '/v1/registrations', payload: body })
      expect(r.statusCode).toBe(202)
      return r.json<{ id: string }>().id
    }
    const ids = []
    for (const p of people) ids.push(await submit(p))
    // Someone the check accepts submits twice: a rejected first would hand its place to the second
    // (decision 015), which would then not be a duplicate.
    const twice = await submit(people.find((p) => mobileMatches(p as never))!)
    await waitFor(async () => {
      const rows = await sql<{ n: number }>(
        url,
        `SELECT count(*)::int AS n FROM registrations WHERE campaign = 'lot' AND status IN ('accepted', 'rejected')`,
      )
      return rows[0]!.n === ids.length
    }, 'every registration settled')
    await waitFor(
      async () => (await sql(url, 'SELECT 1 FROM duplicates WHERE id = $1', [twice])).length === 1,
      'dup',
    )
    const acceptedIds = (
      await sql<{ id: string }>(
        url,
        `SELECT id::text FROM registrations WHERE campaign = 'lot' AND status = 'accepted'`,
      )
    ).map((r) => r.id)
    expect(acceptedIds.length).toBeLessThan(ids.length)

    // Each accepted person's verdict SMS says accepted and nothing of a place: the draw tells that.
    await waitFor(() => acceptedIds.every((id) => sms(`verdict:${id}`)), 'the verdict SMS')
    for (const id of acceptedIds) {
      expect(sms(`verdict:${id}`)!.text).not.toContain(WON)
      expect(sms(`verdict:${id}`)!.text).not.toContain(WAITING)
    }

    const status = async (id: string) =>
      (await app.inject({ method: 'GET', url: `/v1/registrations/${id}` })).json()
    expect((await status(acceptedIds[0]!)).allocation).toEqual({ state: 'not_drawn' })
    await waitFor(() => rx!.got.length >= ids.length, 'verdict callbacks')
    const verdicts = rx.got.filter((c) => c.body.status === 'accepted')
    expect(
      verdicts.every((c) => c.body.allocation?.state === 'not_drawn' && c.key.endsWith(':verdict')),
    ).toBe(true)

    // The draw as if it were after draw_at: by then the recorders' intake watermark (decision 022)
    // is past the close — here the clock is the test's, so the watermark is moved with it.
    await pool.query('UPDATE intake_watermark SET settled_before = $1', [new Date(closes + 1001)])
    const summary = await drawLottery(pool, campaign, 'test', { now: closes + 1001 })
    expect(summary).toMatchObject({ ran: true, participants: acceptedIds.length, winners: 3 })
    const res = await app.inject({ method: 'GET', url: '/v1/campaigns/lot/results' })
    expect(res.statusCode).toBe(200)
    const results = res.json<DrawResults>()
    expect(verifyResults(results)).toEqual([])
    expect(results.participants.map((p) => p.id).sort()).toEqual([...acceptedIds].sort())
    for (const p of people) {
      expect(res.body).not.toContain(String(p.national_id))
      expect(res.body).not.toContain(String(p.mobile))
    }
    // (Counts are cached for a second per process.)
    const page1 = await waitFor(async () => {
      const p = (await app.inject({ method: 'GET', url: '/v1/campaigns/lot' })).json()
      return p.counts.accepted === acceptedIds.length && p
    }, 'counts')
    expect(page1).toMatchObject({
      draw: {
        state: 'revealed',
        commitment: results.commitment,
        participants_sha256: results.participants_sha256,
      },
      counts: { accepted: acceptedIds.length, winners: 3, waitlisted: acceptedIds.length - 3, unsettled: 0 },
    })
    // Each participant is called back with its allocation.
    const drawnCallbacks = await waitFor(() => {
      const got = rx!.got.filter((c) => c.key.includes(':allocation:'))
      return got.length >= acceptedIds.length && got
    }, 'a callback per participant after the draw')
    for (const p of results.participants) {
      const cb = drawnCallbacks.find((c) => c.body.id === p.id)!
      expect(cb.key).toBe(`${p.id}:allocation:${p.result}`)
      expect(cb.body.allocation?.state).toBe(p.result)
    }
    // …and by SMS, once each: a place won, or the waiting list.
    await waitFor(
      () => results.participants.every((p) => sms(`allocation:${p.id}`)),
      'an SMS per participant',
    )
    for (const p of results.participants)
      expect(sms(`allocation:${p.id}`)!.text).toContain(p.result === 'won' ? WON : WAITING)
    const allocationSms = () => [...s!.sim.sms.delivered.keys()].filter((k) => k.startsWith('allocation:'))
    expect(allocationSms()).toHaveLength(results.participants.length)
    expect(sms(`allocation:${twice}`)).toBeUndefined()

    const [w1] = results.participants.map((p) => p.id)
    const q1 = results.participants[3]!.id
    expect((await status(w1!)).allocation).toEqual({ state: 'won' })
    expect((await status(q1)).allocation).toEqual({ state: 'waitlisted', position: 1 })
    expect((await status(twice)).allocation).toBeUndefined() // a duplicate has no allocation

    await releasePlace(pool, campaign, w1!, 'operator')
    expect((await status(q1)).allocation).toEqual({ state: 'won' })
    const call = await waitFor(
      () => rx!.got.find((c) => c.body.id === q1 && c.key === `${q1}:allocation:won`),
      'new winner called back',
    )
    expect(call.body.allocation).toEqual({ state: 'won' })
    // The one who got the place given up is told by SMS; nobody else is sent anything new.
    const promoted = await waitFor(() => sms(`promotion:${q1}`), 'the promotion SMS')
    expect(promoted.text).toContain(WON)
    await new Promise((r) => setTimeout(r, 600)) // a few sweeps
    expect([...s.sim.sms.delivered.keys()].filter((k) => k.startsWith('promotion:'))).toEqual([
      `promotion:${q1}`,
    ])
    expect(allocationSms()).toHaveLength(results.participants.length)
    // The published results now carry the release, and still verify.
    const after = (await app.inject({ method: 'GET', url: '/v1/campaigns/lot/results' })).json<DrawResults>()
    expect(after.releases).toMatchObject([{ released: w1, promoted: q1 }])
    expect(verifyResults(after)).toEqual([])

    // Metrics and the dashboard panel.
    await refreshScarceMetrics(pool, s.sabt.config, s.sabt.metrics)
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    expect(metrics).toContain('sabt_campaign_places{campaign="lot",kind="winners"} 3')
    expect(metrics).toContain('sabt_campaign_places{campaign="lot",kind="released"} 1')
    expect(metrics).toContain('sabt_campaign_places{campaign="lot",kind="capacity"} 3')
    expect(metrics).toContain('sabt_draw_state{campaign="lot"} 2')
    expect(metrics).toMatch(/sabt_draw_seconds\{campaign="lot"\} [0-9]/)
    expect(metrics).toMatch(/sabt_allocation_answers_total\{allocation="waitlisted"\} [1-9]/)
    const admin = { authorization: `Bearer ${s.adminToken}` }
    const page = await app.inject({ method: 'GET', url: '/dashboard', headers: admin })
    expect(page.body).toContain('Scarce campaigns')
    const panel = await app.inject({ method: 'GET', url: '/dashboard/fragments/scarce', headers: admin })
    expect(panel.statusCode).toBe(200)
    expect(panel.body).toContain('revealed')
    expect(panel.body).toContain(w1)
    expect(panel.body).toContain(q1)
    expect(panel.body).toContain('operator')
    // The first_come campaign's row: where the intake watermark is (moved with the test's clock
    // above; the recorders' rounds go on, and never move it back).
    await waitFor(
      async () =>
        (await s!.sabt.metrics.watermarkRounds.get()).values.some((v) => v.labels.outcome === 'advanced'),
      'a round of the recorders',
      30_000,
    )
    const again = await app.inject({ method: 'GET', url: '/dashboard/fragments/scarce', headers: admin })
    expect(again.body).toMatch(/first come, final to \d\d:\d\d:\d\d UTC \(\d+ s behind\)/)
  })
})
