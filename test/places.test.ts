import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { recordAttempt, recordOutcomes } from '../src/db/checks.js'
import { eraseCampaign, resealAll } from '../src/db/personal-data.js'
import { createLogger } from '../src/observability/logger.js'
import { newKey, parseDataKeys, Sealer } from '../src/privacy/sealing.js'
import { identityMatches, isEligible } from '../src/roles/simulator/answers.js'
import { startSabt } from '../src/runtime/start.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import {
  intakeMessage,
  nationalId,
  publishIntake,
  queueDepth,
  registration,
  sql,
  startTestSabt,
  type TestSabt,
  testEnv,
  waitFor,
} from './support/harness.js'

type Reg = Record<string, string>

/** A birth date the simulated civil registry answers "matches" (or "does not match") for. */
function birthDate(reg: Reg, matches: boolean): string {
  for (let day = 1; day <= 28; day++) {
    for (const month of ['01', '04', '07', '10']) {
      const birth_date = `1985-${month}-${String(day).padStart(2, '0')}`
      if (identityMatches({ ...reg, birth_date } as never) === matches) return birth_date
    }
  }
  throw new Error('no such birth date')
}

/**
 * A person the simulated eligibility provider answers "yes" for in `demo` (it says "no" to 5 % of
 * national ids): a test that needs an accepted record must not draw one of those.
 */
function eligiblePerson(): Reg {
  for (;;) {
    const reg = registration() as Reg
    if (isEligible({ national_id: reg.national_id!, campaign: 'demo' })) return reg
  }
}

// A person's place in a campaign (decision 015): a typo must not lock a citizen out.
describe('one standing registration per person per campaign', () => {
  const systems: ChecksSystem[] = []
  afterEach(async () => {
    for (const s of systems.splice(0)) await s.cleanup()
  })
  async function system(opts: Parameters<typeof startChecksSystem>[0] = {}): Promise<ChecksSystem> {
    const s = await startChecksSystem(opts)
    systems.push(s)
    return s
  }
  const submit = async (s: ChecksSystem, reg: Reg): Promise<string> => {
    const res = await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
    expect(res.statusCode).toBe(202)
    return res.json<{ id: string }>().id
  }
  const status = async (s: ChecksSystem, id: string) =>
    (await s.sabt.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })).json<
      Record<string, unknown> & { status: string }
    >()
  const statusIs = (s: ChecksSystem, id: string, ...want: string[]) =>
    waitFor(
      async () => {
        const st = await status(s, id)
        return want.includes(st.status) && st
      },
      `${id} to be ${want.join(' or ')}`,
    )
  const row = async (s: ChecksSystem, id: string) =>
    (
      await sql<{ status: string; holds_place: boolean; promoted_from: string | null; received_at: Date }>(
        s.sabt.env.DATABASE_URL,
        'SELECT status, holds_place, promoted_from::text, received_at FROM registrations WHERE id = $1',
        [id],
      )
    )[0]
  const asked = (s: ChecksSystem, check: 'identity' | 'eligibility', id: string) =>
    s.sim.providers.get(check)!.keys.has(id)
  /** One person: a national id, a wrong birth date (rejected by identity) and the right one. */
  const person = (campaign = 'demo') => {
    const base = registration({ campaign, national_id: nationalId() }) as Reg
    return {
      wrong: { ...base, birth_date: birthDate(base, false) } as Reg,
      right: { ...base, birth_date: birthDate(base, true) } as Reg,
    }
  }
  const identityOnly = {
    checks: {
      identity: { max_attempts: 50, breaker: { consecutive_failures: 10_000, half_open_after_ms: 1000 } },
    },
    campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
  }

  it('a record rejected for a typo gives the place to the submission that waited beside it, which is checked and accepted; a later one waits and becomes a duplicate', async () => {
    // The registry is down: the first submission stays in verifying while the others arrive.
    const s = await system({ ...identityOnly, knobs: { identity: { outage: true } } })
    const p = person()
    const first = await submit(s, p.wrong)
    await waitFor(async () => (await row(s, first))?.status === 'verifying', 'the first being checked')
    const second = await submit(s, p.right)
    const third = await submit(s, p.right)
    const waiting = await statusIs(s, second, 'waiting')
    await statusIs(s, third, 'waiting')
    // Kept whole, sealed like a record: it may become one.
    const kept = await sql<{ row: string }>(
      s.sabt.env.DATABASE_URL,
      'SELECT w::text AS row FROM waiting w WHERE id = ANY($1) ORDER BY id',
      [[second, third]],
    )
    expect(kept).toHaveLength(2)
    for (const k of kept) expect(k.row).not.toContain(p.right.national_id)
    expect(asked(s, 'identity', second)).toBe(false)

    await s.knobs('identity', { outage: false })
    await waitFor(async () => (await row(s, first))?.status === 'rejected', 'the first rejected')
    const accepted = await statusIs(s, second, 'accepted')
    expect(accepted.received_at).toBe(waiting.received_at) // its own arrival time
    expect(await row(s, second)).toMatchObject({ holds_place: true, promoted_from: first })
    expect(await row(s, first)).toMatchObject({ holds_place: false })
    expect(asked(s, 'identity', second)).toBe(true)
    // Operators see both records of the person, and which took whose place.
    const lookup = await s.sabt.app.inject({
      method: 'POST',
      url: '/admin/lookup',
      headers: { authorization: `Bearer ${s.adminToken}` },
      payload: { q: p.right.national_id },
    })
    expect(lookup.json()).toMatchObject({
      kind: 'records',
      records: [
        { id: first, status: 'rejected', holds_place: false, promoted_from: null },
        { id: second, status: 'accepted', holds_place: true, promoted_from: first },
      ],
    })
    // The third waited beside a record that was then accepted: a duplicate, never checked, its
    // personal data dropped.
    await statusIs(s, third, 'duplicate')
    expect(asked(s, 'identity', third)).toBe(false)
    const left = await sql<{ n: number }>(s.sabt.env.DATABASE_URL, 'SELECT count(*)::int AS n FROM waiting')
    expect(left[0]!.n).toBe(0)
    const dup = await sql<{ original_id: string }>(
      s.sabt.env.DATABASE_URL,
      'SELECT original_id::text FROM duplicates WHERE id = $1',
      [third],
    )
    expect(dup).toEqual([{ original_id: second }])
  })

  it('a submission after the rejection is recorded and checked; one after the acceptance is a duplicate', async () => {
    const s = await system(identityOnly)
    const p = person()
    const first = await submit(s, p.wrong)
    await statusIs(s, first, 'rejected')
    const second = await submit(s, p.right)
    await statusIs(s, second, 'accepted')
    expect(await row(s, second)).toMatchObject({ holds_place: true, promoted_from: null })
    const third = await submit(s, p.right)
    await statusIs(s, third, 'duplicate')
    expect(asked(s, 'identity', third)).toBe(false)
    // Another person's place is theirs alone.
    const other = person()
    await statusIs(s, await submit(s, other.right), 'accepted')
  })

  it('caps the records of one person per campaign: past max_records_per_person a submission is a plain duplicate, never checked', async () => {
    const s = await system({
      ...identityOnly,
      campaigns: { demo: { title: 'Demo', checks: ['identity'], max_records_per_person: 2 } },
      knobs: { identity: { outage: true } },
    })
    const p = person()
    const first = await submit(s, p.wrong)
    await waitFor(async () => (await row(s, first))?.status === 'verifying', 'the first being checked')
    const second = await submit(s, p.wrong)
    await statusIs(s, second, 'waiting')
    const third = await submit(s, p.right) // a third record would pass the cap of 2
    await statusIs(s, third, 'duplicate')
    await s.knobs('identity', { outage: false })
    await statusIs(s, first, 'rejected')
    await statusIs(s, second, 'rejected') // took the place, was checked, rejected too
    // The second was the person's last record under the cap: it keeps the place.
    expect(await row(s, second)).toMatchObject({ holds_place: true, promoted_from: first })
    const fourth = await submit(s, p.right)
    await statusIs(s, fourth, 'duplicate')
    expect([first, second, third, fourth].map((id) => asked(s, 'identity', id))).toEqual([
      true,
      true,
      false,
      false,
    ])
  })

  it('many people submitting three times at once, with answers arriving meanwhile: each ends with one place holder, and every verdict is its own data’s', async () => {
    const s = await system(identityOnly)
    const subs: { id: string; reg: Reg }[] = []
    await Promise.all(
      Array.from({ length: 30 }, async () => {
        const base = registration({ national_id: nationalId() }) as Reg
        const regs = [0, 1, 2].map(() => ({
          ...base,
          birth_date: birthDate(base, Math.random() < 0.5),
        })) as Reg[]
        const ids = await Promise.all(regs.map((r) => submit(s, r)))
        for (const [i, id] of ids.entries()) subs.push({ id, reg: regs[i]! })
      }),
    )
    const ids = subs.map((x) => x.id)
    const db = s.sabt.env.DATABASE_URL
    await waitFor(
      async () => {
        const [c] = await sql<{ settled: number; waiting: number }>(
          db,
          `SELECT (SELECT count(*)::int FROM registrations WHERE id = ANY($1) AND status IN ('accepted', 'rejected'))
                + (SELECT count(*)::int FROM duplicates WHERE id = ANY($1)) AS settled,
                  (SELECT count(*)::int FROM waiting) AS waiting`,
          [ids],
        )
        return c!.settled === ids.length && c!.waiting === 0
      },
      'every submission settled, none waiting',
      40_000,
    )
    const records = await sql<{ id: string; status: string; holds_place: boolean; nidx: string }>(
      db,
      `SELECT id::text, status, holds_place, encode(national_id_index, 'hex') AS nidx
       FROM registrations WHERE id = ANY($1) ORDER BY id`,
      [ids],
    )
    const byId = new Map(subs.map((x) => [x.id, x.reg]))
    for (const r of records)
      expect({ id: r.id, status: r.status }).toEqual({
        id: r.id,
        status: identityMatches(byId.get(r.id) as never) ? 'accepted' : 'rejected',
      })
    const people = new Map<string, typeof records>()
    for (const r of records) people.set(r.nidx, [...(people.get(r.nidx) ?? []), r])
    expect(people.size).toBe(30)
    for (const recs of people.values()) {
      const holders = recs.filter((r) => r.holds_place)
      expect(holders).toHaveLength(1)
      // The holder is the accepted one, or the person's third record, rejected like the others.
      if (holders[0]!.status === 'rejected')
        expect(recs.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected'])
      else expect(recs.filter((r) => r.status === 'accepted')).toHaveLength(1)
    }
    // A submission never checked is a duplicate of an accepted record, or of a person at the cap.
    const dups = await sql<{ status: string; records: number }>(
      db,
      `SELECT o.status, (SELECT count(*)::int FROM registrations x WHERE x.national_id_index = o.national_id_index) AS records
       FROM duplicates d JOIN registrations o ON o.id = d.original_id WHERE d.id = ANY($1)`,
      [ids],
    )
    expect(records.length + dups.length).toBe(90)
    for (const d of dups) expect(d.status === 'accepted' || d.records === 3).toBe(true)
  })

  it('a record failed on a dead-lettered check gives up its place; replaying it later asks nothing for a person whose place is taken', async () => {
    const s = await system({
      checks: {
        eligibility: { max_attempts: 3, breaker: { consecutive_failures: 10_000, half_open_after_ms: 1000 } },
      },
      campaigns: { demo: { title: 'Demo', checks: ['eligibility'] } },
      knobs: { eligibility: { error_rate: 1 } },
    })
    // One waits beside the record that fails … (people the provider says yes to: the places asserted
    // below are an accepted record's)
    const a = eligiblePerson()
    const aFirst = await submit(s, a)
    const aSecond = await submit(s, a)
    await statusIs(s, aSecond, 'waiting')
    await waitFor(async () => (await row(s, aFirst))?.status === 'failed', 'the first failed')
    await s.knobs('eligibility', { error_rate: 0 })
    await statusIs(s, aSecond, 'accepted')
    expect(await row(s, aSecond)).toMatchObject({ promoted_from: aFirst, holds_place: true })
    // … another person submits again only after the failure.
    await s.knobs('eligibility', { error_rate: 1 })
    const b = eligiblePerson()
    const bFirst = await submit(s, b)
    await waitFor(async () => (await row(s, bFirst))?.status === 'failed', 'b failed')
    await s.knobs('eligibility', { error_rate: 0 })
    const bSecond = await submit(s, b)
    await statusIs(s, bSecond, 'accepted')
    expect(await row(s, bSecond)).toMatchObject({ promoted_from: null, holds_place: true })

    // The replay takes both dead letters out and asks nothing: each person's place is taken. A
    // record is booked `failed` before its dead letter is stored (dead-inbox), so wait for both.
    await waitFor(async () => (await queueDepth(s.sabt.mq!.names.dead)) === 2, 'both dead letters kept')
    const calls = (await s.stats()).eligibility!.calls
    const replay = await s.sabt.app.inject({
      method: 'POST',
      url: '/admin/dead/replay',
      headers: { authorization: `Bearer ${s.adminToken}` },
      payload: { check: 'eligibility' },
    })
    expect(replay.json()).toEqual({ replayed: 0, kept: 0, unreadable: 0, superseded: 2, unconfigured: 0 })
    expect(await queueDepth(s.sabt.mq!.names.dead)).toBe(0)
    expect((await s.stats()).eligibility!.calls).toBe(calls)
    expect((await row(s, aFirst))!.status).toBe('failed')
    expect((await row(s, bFirst))!.status).toBe('failed')
    // The public sees the failed record's check as pending, and nothing of why.
    const st = await status(s, aFirst)
    expect(st).toMatchObject({ status: 'failed', checks: [{ check: 'eligibility', outcome: 'pending' }] })
    expect(JSON.stringify(st)).not.toContain('provider answered')
  })
})

// The recorder alone (no checker): a record stays `recorded`, so later submissions wait beside it.
describe('redelivered intake messages are recognised by their id', () => {
  let s: TestSabt
  beforeAll(async () => {
    s = await startTestSabt({ roles: ['recorder'] })
  })
  afterAll(async () => {
    await s?.cleanup()
  })
  const written = async (kind: string) =>
    (await s.metrics.rowsWritten.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0
  const tables = async () =>
    sql(
      s.env.DATABASE_URL,
      `SELECT (SELECT json_agg(r ORDER BY id) FROM registrations r) AS registrations,
              (SELECT json_agg(w ORDER BY id) FROM waiting w) AS waiting,
              (SELECT json_agg(d ORDER BY id) FROM duplicates d) AS duplicates`,
    )

  it('after retention erasure, a redelivery changes nothing and is acked, not dead-lettered', async () => {
    const m = intakeMessage({ campaign: 'nocheck' })
    await publishIntake(s, [m])
    await waitFor(
      async () => (await sql(s.env.DATABASE_URL, 'SELECT 1 FROM registrations WHERE id = $1', [m.id])).length,
      'recorded',
    )
    expect(await eraseCampaign(s.pool!, 'nocheck', { retentionDays: null, all: true })).toBe(1)
    const stored = () =>
      sql(
        s.env.DATABASE_URL,
        `SELECT (SELECT json_agg(r) FROM registrations r WHERE id = $1) AS record,
                (SELECT count(*)::int FROM duplicates) AS duplicates`,
        [m.id],
      )
    const before = await stored()
    const redelivered = await written('redelivered')
    await publishIntake(s, [m]) // as if the broker delivered it again
    await waitFor(async () => (await written('redelivered')) === redelivered + 1, 'the redelivery recognised')
    await waitFor(async () => (await queueDepth(s.mq!.names.intakeQueues[0]!)) === 0, 'acked')
    expect(await queueDepth(s.mq!.names.intakeDead)).toBe(0)
    expect(await stored()).toEqual(before)
  })

  it('a redelivered answer that gave the place away hands back the promoted record until its checks start', async () => {
    const nid = nationalId()
    const [first, second] = [intakeMessage({ national_id: nid }), intakeMessage({ national_id: nid })]
    await publishIntake(s, [first, second])
    await waitFor(
      async () => (await sql(s.env.DATABASE_URL, 'SELECT 1 FROM waiting WHERE id = $1', [second.id])).length,
      'the second waiting beside the first',
    )
    const campaign = s.config.campaigns.get('demo')!
    const answer = {
      id: first.id as string,
      check: 'identity',
      outcome: 'failed' as const,
      attempts: 1,
      latencyMs: 5,
      detail: null,
      required: campaign.checks,
      hasCallback: false,
      maxRecordsPerPerson: campaign.maxRecordsPerPerson,
    }
    const promoted = [{ id: second.id, campaign: 'demo', promotedFrom: first.id }]
    const [once] = await recordOutcomes(s.pool!, [answer])
    expect(once).toMatchObject({ status: 'rejected', becameFinal: true, promoted })
    // The checker died before publishing the second's checks: the redelivered answer says it again.
    const [again] = await recordOutcomes(s.pool!, [answer])
    expect(again).toMatchObject({ status: 'rejected', becameFinal: false, stored: false, promoted })
    // Once its checks have started, nothing more.
    await recordAttempt(s.pool!, second.id as string, 'identity', 1, 'timeout')
    const [late] = await recordOutcomes(s.pool!, [answer])
    expect(late!.promoted).toEqual([])
    const rows = await sql<{ id: string; holds_place: boolean; received_at: Date }>(
      s.env.DATABASE_URL,
      'SELECT id::text, holds_place, received_at FROM registrations WHERE id = ANY($1) ORDER BY id',
      [[first.id, second.id]],
    )
    expect(rows.map((r) => [r.id, r.holds_place])).toEqual([
      [first.id, false],
      [second.id, true],
    ])
    expect(rows[1]!.received_at.getTime()).toBe(second.received_at)
  })

  it('a redelivered waiting submission or duplicate is stored once', async () => {
    const nid = nationalId()
    const [first, second] = [intakeMessage({ national_id: nid }), intakeMessage({ national_id: nid })]
    await publishIntake(s, [first])
    await waitFor(
      async () =>
        (await sql(s.env.DATABASE_URL, 'SELECT 1 FROM registrations WHERE id = $1', [first.id])).length,
      'the first recorded',
    )
    await publishIntake(s, [second])
    await waitFor(
      async () => (await sql(s.env.DATABASE_URL, 'SELECT 1 FROM waiting WHERE id = $1', [second.id])).length,
      'the second waiting beside it',
    )
    const before = await tables()
    const waitingSeen = await written('waiting')
    await publishIntake(s, [second, second])
    await waitFor(async () => (await written('waiting')) === waitingSeen + 2, 'both redeliveries seen')
    await waitFor(async () => (await queueDepth(s.mq!.names.intakeQueues[0]!)) === 0, 'acked')
    expect(await tables()).toEqual(before)
    expect(await queueDepth(s.mq!.names.intakeDead)).toBe(0)
  })

  it('re-sealing covers waiting submissions; erasure turns them into duplicates, dropping their personal data', async () => {
    const nid = nationalId()
    const [first, second] = [
      intakeMessage({ national_id: nid, campaign: 'demo' }),
      intakeMessage({ national_id: nid, campaign: 'demo' }),
    ]
    await publishIntake(s, [first, second])
    await waitFor(
      async () => (await sql(s.env.DATABASE_URL, 'SELECT 1 FROM waiting WHERE id = $1', [second.id])).length,
      'the second waiting',
    )
    const both = new Sealer(
      parseDataKeys(`${s.env.SABT_DATA_KEYS},k2:${newKey()}`, 'k2', s.env.SABT_INDEX_KEY!),
    )
    expect(await resealAll(s.pool!, both)).toBeGreaterThanOrEqual(2)
    const [w] = await sql<{ nid: Buffer; key_id: string }>(
      s.env.DATABASE_URL,
      'SELECT national_id_sealed AS nid, key_id FROM waiting WHERE id = $1',
      [second.id],
    )
    expect(w!.key_id).toBe('k2')
    expect(both.open(w!.nid, 'k2', `${second.id}:national_id`)).toBe(nid)

    await eraseCampaign(s.pool!, 'demo', { retentionDays: null, all: true })
    expect(await sql(s.env.DATABASE_URL, 'SELECT 1 FROM waiting WHERE id = $1', [second.id])).toEqual([])
    expect(
      await sql(s.env.DATABASE_URL, 'SELECT original_id::text FROM duplicates WHERE id = $1', [second.id]),
    ).toEqual([{ original_id: first.id }])
  })
})

describe('the cap holds across recorders writing at once', () => {
  it('two recorders taking 20 people’s 8 submissions each admit at most max_records_per_person of each', async () => {
    // Tiny batches, so both recorders resolve the same people's submissions at the same time.
    const env = testEnv({ SABT_RECORDER_PREFETCH: '2', SABT_BATCH_SIZE: '2', SABT_BATCH_MS: '2' })
    const a = await startTestSabt({ roles: ['recorder'], env })
    const b = await startSabt({
      roles: ['recorder'],
      env,
      config: a.config,
      log: createLogger({ level: 'error' }),
      migrate: false,
      listen: false,
    })
    try {
      const people = Array.from({ length: 20 }, () => nationalId())
      const msgs: Record<string, unknown>[] = []
      // Each person's submissions one after the other: the two recorders' batches hold the same person.
      for (const nid of people) for (let n = 0; n < 8; n++) msgs.push(intakeMessage({ national_id: nid }))
      await publishIntake(a, msgs)
      const ids = msgs.map((m) => m.id as string)
      await waitFor(async () => {
        const [c] = await sql<{ n: number }>(
          env.DATABASE_URL,
          `SELECT (SELECT count(*) FROM registrations WHERE id = ANY($1)) + (SELECT count(*) FROM waiting WHERE id = ANY($1))
                  + (SELECT count(*) FROM duplicates WHERE id = ANY($1))::int AS n`,
          [ids],
        )
        return Number(c!.n) === ids.length
      }, 'all written')
      // Per person: one record, two waiting beside it (the cap is 3), the other five duplicates.
      const perPerson = await sql<{ records: number; waiting: number; duplicates: number }>(
        env.DATABASE_URL,
        `SELECT count(*) FILTER (WHERE kind = 'r')::int AS records, count(*) FILTER (WHERE kind = 'w')::int AS waiting,
                count(*) FILTER (WHERE kind = 'd')::int AS duplicates
         FROM (SELECT 'r' AS kind, national_id_index AS nidx FROM registrations
               UNION ALL SELECT 'w', national_id_index FROM waiting
               UNION ALL SELECT 'd', r.national_id_index FROM duplicates d JOIN registrations r ON r.id = d.original_id) x
         GROUP BY nidx`,
      )
      expect(perPerson).toHaveLength(20)
      for (const p of perPerson) expect(p).toEqual({ records: 1, waiting: 2, duplicates: 5 })
      const written = async (s: { metrics: TestSabt['metrics'] }) =>
        (await s.metrics.rowsWritten.get()).values.reduce((n, v) => n + v.value, 0)
      expect(await written(a)).toBeGreaterThan(0)
      expect(await written(b)).toBeGreaterThan(0) // both took part
    } finally {
      await b.stop()
      await a.cleanup()
    }
  })
})
