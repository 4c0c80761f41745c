import { type ChildProcess, spawn } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import type { Env } from '../src/config/env.js'
import { showTrackingCode, TRACKING_ALPHABET } from '../src/db/citizen.js'
import { commitDraw, drawLottery, loadResults, releasePlace } from '../src/db/draws.js'
import { Publisher } from '../src/mq/publisher.js'
import { replayDead } from '../src/operations/index.js'
import type { SmsDelivery } from '../src/roles/simulator/server.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { captureLogger, registration, sql, waitFor, withReplayPublisher } from './support/harness.js'

type Reg = Record<string, string>

/** Messages to citizens (issue 14 item 1, decision 021): the outbox, against the real broker and database. */
describe('citizen SMS outbox', () => {
  const systems: ChecksSystem[] = []
  const children: ChildProcess[] = []
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL')
    for (const s of systems.splice(0)) await s.cleanup()
  })
  async function system(opts: Parameters<typeof startChecksSystem>[0]): Promise<ChecksSystem> {
    const s = await startChecksSystem({
      ...opts,
      env: { SABT_SMS_SWEEP_MS: '100', SABT_CLIENT_RATE: '0', ...opts.env },
    })
    systems.push(s)
    return s
  }
  async function submit(s: ChecksSystem, regs: Reg[]): Promise<string[]> {
    const ids: string[] = []
    for (const reg of regs) {
      const res = await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
      expect(res.statusCode).toBe(202)
      ids.push(res.json<{ id: string }>().id)
    }
    return ids
  }
  const delivered = (s: ChecksSystem) => [...s.sim.sms.delivered.values()]
  const codes = async (s: ChecksSystem) =>
    new Map(
      (
        await sql<{ id: string; code: string }>(
          s.sabt.env.DATABASE_URL,
          'SELECT registration_id::text AS id, code FROM tracking_codes',
        )
      ).map((r) => [r.id, r.code]),
    )

  it('writes no outbox row where no SMS provider is configured, and still gives every registration its tracking code', async () => {
    const s = await system({})
    const ids = await submit(
      s,
      Array.from({ length: 20 }, () => registration() as Reg),
    )
    await waitFor(async () => (await codes(s)).size === 20, '20 tracking codes')
    const byCode = await codes(s)
    for (const id of ids) expect(byCode.get(id)).toMatch(new RegExp(`^[${TRACKING_ALPHABET}]{8}$`))
    // Verdicts come (the checks run) but owe no message: nothing waits for a sender that is not there.
    await waitFor(
      async () =>
        (
          await sql<{ n: number }>(
            s.sabt.env.DATABASE_URL,
            "SELECT count(*)::int AS n FROM registrations WHERE status IN ('accepted', 'rejected')",
          )
        )[0]!.n === 20,
      '20 final verdicts',
      30_000,
    )
    const outbox = await sql<{ n: number }>(
      s.sabt.env.DATABASE_URL,
      'SELECT count(*)::int AS n FROM citizen_messages',
    )
    expect(outbox[0]!.n).toBe(0)
    expect(delivered(s)).toHaveLength(0)
  })

  it('sends exactly one receipt with the tracking code per recorded registration, none for a duplicate, and one verdict', async () => {
    const { log, lines } = captureLogger('debug')
    const s = await system({ sms: {}, log })
    const regs = Array.from({ length: 30 }, () => registration() as Reg)
    const ids = await submit(s, regs)
    await waitFor(
      () => delivered(s).filter((d) => d.reference.startsWith('verdict:')).length === 30,
      '30 verdict messages',
      30_000,
    )
    await waitFor(
      () => delivered(s).filter((d) => d.reference.startsWith('receipt:')).length === 30,
      '30 receipts',
    )
    // The accepted people again: duplicates, which get no second receipt.
    const statuses = new Map(
      (
        await sql<{ id: string; status: string }>(
          s.sabt.env.DATABASE_URL,
          'SELECT id::text, status FROM registrations',
        )
      ).map((r) => [r.id, r.status]),
    )
    const again = regs.filter((_, i) => statuses.get(ids[i]!) === 'accepted').slice(0, 5)
    expect(again.length).toBeGreaterThan(0)
    await submit(
      s,
      again.map((r) => ({ ...r })),
    )
    await waitFor(
      async () =>
        (await sql<{ n: number }>(s.sabt.env.DATABASE_URL, 'SELECT count(*)::int AS n FROM duplicates'))[0]!
          .n === again.length,
      'the duplicates recorded',
    )
    const byCode = await codes(s)
    expect(byCode.size).toBe(30)
    for (const [i, id] of ids.entries()) {
      const code = byCode.get(id)!
      expect(code).toMatch(new RegExp(`^[${TRACKING_ALPHABET}]{8}$`))
      const receipt = s.sim.sms.delivered.get(`receipt:${id}`)!
      expect(receipt.to).toBe(regs[i]!.mobile)
      expect(receipt.text).toContain(showTrackingCode(code))
      expect(receipt.text).toContain('کد رهگیری') // Persian by default
      // Nothing personal in the text: not the national id, not the mobile, not the name.
      for (const v of [regs[i]!.national_id, regs[i]!.mobile, regs[i]!.first_name])
        expect(receipt.text).not.toContain(v)
      expect(s.sim.sms.delivered.get(`verdict:${id}`)!.text).toContain(showTrackingCode(code))
    }
    // Let the sweeper run a few more times: nothing more is sent.
    await new Promise((r) => setTimeout(r, 600))
    expect(delivered(s)).toHaveLength(60)
    expect(delivered(s).every((d: SmsDelivery) => d.requests === 1)).toBe(true)
    const rows = await sql<{ k: string; n: number }>(
      s.sabt.env.DATABASE_URL,
      `SELECT kind || ':' || state AS k, count(*)::int AS n FROM citizen_messages GROUP BY 1 ORDER BY 1`,
    )
    expect(rows).toEqual([
      { k: 'receipt:sent', n: 30 },
      { k: 'verdict:sent', n: 30 },
    ])
    // The SMS provider has its row on the dashboard, beside the checks': texts taken per second,
    // the circuit, the share of its rate limit (500/s here).
    const smsRow = await waitFor(async () => {
      const f = await s.sabt.app.inject({
        method: 'GET',
        url: '/dashboard/fragments/providers',
        headers: { authorization: `Bearer ${s.adminToken}` },
      })
      const cells = /<tr data-check="sms">(.*?)<\/tr>/s
        .exec(f.body)?.[1]
        ?.split('</td>')
        .map((c) => c.replace(/<[^>]+>/g, '').trim())
      return cells && Number(cells[3]) > 0 ? cells : undefined
    }, 'the SMS row on the dashboard')
    expect(smsRow[0]).toBe('sms')
    expect(smsRow[1]).toBe('1') // one checker process sends
    // Its answered calls are timed (the simulator answers in milliseconds here): a p50 and a p99.
    expect(smsRow[4]).toMatch(/^[\d,.]+ ms$/)
    expect(smsRow[5]).toMatch(/^[\d,.]+ ms$/)
    expect(smsRow[6]).toMatch(/^0\s*%$/) // no failed call
    expect(smsRow[10]).toBe('closed')
    expect(smsRow[11]).toMatch(/of 500\/s/)
    // No mobile number in any log line (the logger's masking aside, they are never logged).
    const all = lines.join('\n')
    for (const r of regs) expect(all).not.toContain(r.mobile!.slice(1))
  })

  /** A first_come campaign with one place, two people accepted for it, and the SMS provider down. */
  async function twoForOnePlace() {
    const s = await system({
      sms: { max_attempts: 100, breaker: { consecutive_failures: 1000 } },
      knobs: { sms: { outage: true } },
      campaigns: { fc: { title: 'First come', capacity: 1, allocation: 'first_come' } },
    })
    const url = s.sabt.env.DATABASE_URL
    const [first, second] = await submit(s, [
      registration({ campaign: 'fc' }) as Reg,
      registration({ campaign: 'fc' }) as Reg,
    ])
    await waitFor(
      async () =>
        (
          await sql<{ n: number }>(
            url,
            "SELECT count(*)::int AS n FROM registrations WHERE campaign = 'fc' AND status = 'accepted'",
          )
        )[0]!.n === 2,
      'both accepted (no checks)',
    )
    // Both places final (the intake watermark past them) and told once by the finality sweep.
    await waitFor(
      async () =>
        (
          await sql<{ n: number }>(
            url,
            "SELECT count(*)::int AS n FROM registrations WHERE campaign = 'fc' AND allocation_told_at IS NOT NULL",
          )
        )[0]!.n === 2,
      'both places final',
      30_000,
    )
    return { s, url, first, second }
  }

  it('tells a person a place came to before their verdict message went out that they won once, not twice', async () => {
    const { s, url, first, second } = await twoForOnePlace()
    // The first gives the place up while the provider is down: the second's verdict message, still
    // owed, will tell them they won; the promotion it also owes would say it a second time.
    const released = await releasePlace(s.sabt.pool!, s.sabt.config.campaigns.get('fc')!, first!, 'operator')
    expect(released).toMatchObject({ promoted: second })
    const notices = () =>
      sql<{ k: string; state: string; told: string | null }>(
        url,
        `SELECT kind AS k, state, told FROM citizen_messages WHERE registration_id = $1 ORDER BY kind`,
        [second],
      )
    // The finality sweep owed an allocation message too, skipped at once: the verdict, still to
    // be sent, will tell the place (whoever holds it by then).
    await waitFor(
      async () => (await notices()).find((n) => n.k === 'allocation')?.state === 'skipped',
      'the allocation message skipped',
    )
    // The promotion may be skipped already for the same reason, or still be waiting its turn.
    expect(
      (await notices()).map(
        (n) =>
          `${n.k}:${n.state.replace(/^(pending|skipped)$/, n.k === 'promotion' ? 'pending or skipped' : '$1')}`,
      ),
    ).toEqual(['allocation:skipped', 'promotion:pending or skipped', 'receipt:pending', 'verdict:pending'])
    await s.knobs('sms', { outage: false })
    await waitFor(
      async () => (await notices()).every((n) => n.state !== 'pending'),
      'the second person’s messages done',
      30_000,
    )
    await new Promise((r) => setTimeout(r, 600)) // a few sweeps: nothing more comes
    const WON = 'سهمیه به شما رسید'
    expect(s.sim.sms.delivered.get(`verdict:${second}`)?.text).toContain(WON)
    expect(s.sim.sms.delivered.get(`promotion:${second}`)).toBeUndefined()
    expect(s.sim.sms.delivered.get(`allocation:${second}`)).toBeUndefined()
    expect(await notices()).toEqual([
      { k: 'allocation', state: 'skipped', told: null },
      { k: 'promotion', state: 'skipped', told: null },
      { k: 'receipt', state: 'sent', told: null },
      { k: 'verdict', state: 'sent', told: 'won' },
    ])
    // The one who gave it up is not told they won either.
    expect(s.sim.sms.delivered.get(`verdict:${first}`)?.text).not.toContain(WON)
  })

  it('a promotion waits for a sender holding the verdict message, and is sent when that one told "waitlisted"', async () => {
    const { s, url, first, second } = await twoForOnePlace()
    // A sender holds the second person's verdict message (its text read before the place came).
    await sql(
      url,
      `UPDATE citizen_messages SET claimed_until = clock_timestamp() + interval '30 s'
        WHERE registration_id = $1 AND kind = 'verdict'`,
      [second],
    )
    await releasePlace(s.sabt.pool!, s.sabt.config.campaigns.get('fc')!, first!, 'operator')
    await new Promise((r) => setTimeout(r, 1500)) // the promotion is tried meanwhile: it must wait
    // That sender finishes: it told "waitlisted". The promotion is news, and goes once the provider is back.
    await sql(
      url,
      `UPDATE citizen_messages SET state = 'sent', told = 'waitlisted', sent_at = now(), claimed_until = NULL
        WHERE registration_id = $1 AND kind = 'verdict'`,
      [second],
    )
    await s.knobs('sms', { outage: false })
    const promoted = await waitFor(
      () => s.sim.sms.delivered.get(`promotion:${second}`),
      'the promotion SMS',
      60_000, // it parked for the rest of the held claim (30 s)
    )
    expect(promoted.text).toContain('سهمیه به شما رسید')
  })

  it('dead-letters receipts the provider keeps refusing, and a replay sends each exactly once', async () => {
    const s = await system({
      sms: { max_attempts: 2, breaker: { consecutive_failures: 1000 } },
      knobs: { sms: { outage: true } },
      campaigns: { demo: { title: 'Demo' } },
    })
    const ids = await submit(
      s,
      Array.from({ length: 12 }, () => registration() as Reg),
    )
    await waitFor(
      async () =>
        (
          await sql<{ n: number }>(
            s.sabt.env.DATABASE_URL,
            `SELECT count(*)::int AS n FROM citizen_messages WHERE state = 'error'`,
          )
        )[0]!.n === 24,
      'every receipt and verdict dead-lettered',
      30_000,
    )
    await waitFor(
      async () => (await s.sabt.mq!.queueDepth(s.sabt.mq!.names.dead))?.messages,
      'dead letters stored',
    )
    expect(delivered(s)).toHaveLength(0)
    await s.knobs('sms', { outage: false })
    const publisher = new Publisher(
      s.sabt.mq!,
      { name: 'test-replay', confirmTimeoutMs: 3000, maxInFlight: 100 },
      s.sabt.metrics,
      s.sabt.log,
    )
    await publisher.start()
    const deps = { mq: s.sabt.mq!, pool: s.sabt.pool!, publisher, config: s.sabt.config, log: s.sabt.log }
    const first = await replayDead(deps)
    expect(first.replayed).toBe(24)
    await waitFor(() => delivered(s).length === 24, 'every replayed message delivered')
    // A second replay finds nothing to send; nothing arrives twice.
    const again = await replayDead(deps)
    expect(again.replayed).toBe(0)
    await new Promise((r) => setTimeout(r, 600))
    expect(delivered(s)).toHaveLength(24)
    await publisher.close()
    for (const id of ids) {
      expect(s.sim.sms.delivered.get(`receipt:${id}`)?.requests).toBe(1)
      expect(s.sim.sms.delivered.get(`verdict:${id}`)?.requests).toBe(1)
    }
  })

  it('dead-letters allocation and promotion messages the provider keeps refusing; a replay tells each person their place once', async () => {
    const s = await system({
      sms: { max_attempts: 2, breaker: { consecutive_failures: 1000 } },
      knobs: { sms: { outage: true } },
      campaigns: {
        lot: {
          title: 'Lottery',
          capacity: 2,
          allocation: 'lottery',
          opens_at: '2026-01-01T00:00:00Z',
          closes_at: '2998-01-01T00:00:00Z',
          draw_at: '2998-01-02T00:00:00Z',
        },
      },
    })
    const url = s.sabt.env.DATABASE_URL
    const lot = s.sabt.config.campaigns.get('lot')!
    await commitDraw(s.sabt.pool!, 'lot', 'operator')
    const ids = await submit(
      s,
      Array.from({ length: 4 }, () => registration({ campaign: 'lot' }) as Reg),
    )
    const errors = async (kind: string) =>
      (
        await sql<{ n: number }>(
          url,
          `SELECT count(*)::int AS n FROM citizen_messages WHERE state = 'error' AND kind = $1`,
          [kind],
        )
      )[0]!.n
    await waitFor(async () => (await errors('verdict')) === 4, 'the verdicts dead-lettered', 30_000)
    // The draw as if it were after draw_at, the intake watermark (decision 022) moved with the clock.
    await sql(url, `UPDATE intake_watermark SET settled_before = '2998-01-03T00:00:00Z'`)
    const drawn = await drawLottery(s.sabt.pool!, lot, 'operator', {
      now: Date.parse('2998-01-03T00:00:00Z'),
    })
    expect(drawn).toMatchObject({ participants: 4, winners: 2 })
    const results = (await loadResults(s.sabt.pool!, 'lot'))!
    const [winner, , firstWaiting] = results.participants.map((p) => p.id)
    const released = await releasePlace(s.sabt.pool!, lot, winner!, 'operator')
    expect(released.promoted).toBe(firstWaiting)
    // Nothing pending any more: the released winner's allocation message has nothing left to tell
    // (skipped); the promotion is dead-lettered, or skipped when it found the promoted person's
    // allocation message still to be sent (that one will say "won"); the rest are dead-lettered.
    const states = async () =>
      sql<{ kind: string; id: string; state: string }>(
        url,
        `SELECT kind, registration_id::text AS id, state FROM citizen_messages ORDER BY kind, registration_id`,
      )
    await waitFor(
      async () => (await states()).every((m) => m.state === 'error' || m.state === 'skipped'),
      'every message dead-lettered or skipped',
      30_000,
    )
    const settled = await states()
    expect(settled.find((m) => m.kind === 'allocation' && m.id === winner)?.state).toBe('skipped')
    expect(settled.filter((m) => m.kind === 'allocation' && m.state === 'error')).toHaveLength(3)
    expect(settled.filter((m) => m.kind === 'promotion').map((m) => m.id)).toEqual([firstWaiting])
    expect(await errors('receipt')).toBe(4)
    const deadLettered = settled.filter((m) => m.state === 'error').length
    expect(delivered(s)).toHaveLength(0)

    await s.knobs('sms', { outage: false })
    await withReplayPublisher(s.sabt.mq!, async ({ publisher }) => {
      const deps = { mq: s.sabt.mq!, pool: s.sabt.pool!, publisher, config: s.sabt.config, log: s.sabt.log }
      expect((await replayDead(deps)).replayed).toBe(deadLettered)
      await waitFor(
        async () =>
          (
            await sql<{ n: number }>(
              url,
              `SELECT count(*)::int AS n FROM citizen_messages WHERE state IN ('pending', 'error')`,
            )
          )[0]!.n === 0,
        'every replayed message done',
        30_000,
      )
      expect((await replayDead(deps)).replayed).toBe(0)
      await new Promise((r) => setTimeout(r, 600))
    })
    const WON = 'سهمیه به شما رسید'
    for (const id of ids) {
      // One message of each kind at most, and "you won" at most once, whichever kind said it.
      const sent = delivered(s).filter((d) => d.reference.endsWith(`:${id}`))
      for (const d of sent) expect(d.requests, d.reference).toBe(1)
      const holdsAPlace =
        id === firstWaiting ||
        (id !== winner && results.participants.find((p) => p.id === id)!.result === 'won')
      expect(sent.filter((d) => d.text.includes(WON)).length, id).toBe(holdsAPlace ? 1 : 0)
    }
    // The released winner heard nothing of a place; the promoted one heard "won" once.
    expect(s.sim.sms.delivered.get(`allocation:${winner}`)).toBeUndefined()
  })

  it('a sender SIGKILLed mid-batch: every registration still gets exactly one receipt', async () => {
    // The test's process records; the sender is a child process, killed while it sends.
    const s = await system({
      sms: { rate_per_second: 100, concurrency: 8, timeout_ms: 1000 },
      knobs: { sms: { latency_median_ms: 20, latency_p99_ms: 40 } },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
      roles: ['gateway', 'recorder', 'status'],
    })
    const n = 300
    const ids = await submit(
      s,
      Array.from({ length: n }, () => registration() as Reg),
    )
    const envArg = JSON.stringify(envStrings(s.sabt.env))
    const configDoc = {
      retry_tiers: ['200ms', '500ms', '1s'],
      checks: { identity: { provider: 'identity', url: `${s.simUrl}/identity`, concurrency: 8 } },
      sms: { url: `${s.simUrl}/sms`, rate_per_second: 100, concurrency: 8, timeout_ms: 1000 },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
    }
    const start = async () => {
      const c = spawn(
        process.execPath,
        ['--import', 'tsx', 'test/support/sms-child.ts', envArg, JSON.stringify(configDoc)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      )
      children.push(c)
      await new Promise<void>((resolve, reject) => {
        c.stdout!.on('data', (d) => String(d).includes('ready') && resolve())
        c.on('exit', (code) => reject(new Error(`sender exited ${code}`)))
      })
      return c
    }
    const first = await start()
    await waitFor(() => s.sim.sms.delivered.size >= 60, 'the first receipts', 30_000)
    first.kill('SIGKILL')
    const sentBeforeKill = s.sim.sms.delivered.size
    expect(sentBeforeKill).toBeLessThan(2 * n) // killed mid-batch, not after
    await start()
    await waitFor(
      () => ids.every((id) => s.sim.sms.delivered.has(`receipt:${id}`)),
      'a receipt for every registration',
      60_000,
    )
    await waitFor(
      async () =>
        (
          await sql<{ n: number }>(
            s.sabt.env.DATABASE_URL,
            `SELECT count(*)::int AS n FROM citizen_messages WHERE kind = 'receipt' AND state = 'sent'`,
          )
        )[0]!.n === n,
      'every receipt marked sent',
    )
    const receipts = delivered(s).filter((d) => d.reference.startsWith('receipt:'))
    expect(receipts).toHaveLength(n)
    // A request the kill interrupted after the provider took it is sent again with the same
    // reference (its idempotency key): delivered once.
    const resent = receipts.filter((d) => d.requests > 1).length
    expect(resent).toBeLessThanOrEqual(8 + 8) // at most what was in flight when it died
    console.log(
      `sms kill: ${sentBeforeKill} delivered before the SIGKILL, ${resent} re-sent by reference, ${n} receipts delivered once each`,
    )
  }, 120_000)
})

function envStrings(env: Env): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== null) out[k] = String(v)
  return out
}
