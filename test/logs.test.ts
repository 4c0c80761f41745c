import { afterAll, describe, expect, it } from 'vitest'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { captureLogger, registration, sql, waitFor } from './support/harness.js'

const persianDigits = (s: string) => s.replace(/[0-9]/g, (d) => String.fromCharCode(0x06f0 + Number(d)))

describe('structured logs', () => {
  let s: ChecksSystem | null = null
  afterAll(async () => {
    await s?.cleanup()
  })

  it('carry the registration id across every role at debug level, and never a full national id or mobile', async () => {
    const { log, lines } = captureLogger('debug')
    s = await startChecksSystem({
      log,
      env: { LOG_LEVEL: 'debug' },
      checks: {
        eligibility: { max_attempts: 2, breaker: { consecutive_failures: 1000, half_open_after_ms: 1000 } },
      },
      knobs: { eligibility: { error_rate: 1 } }, // dead letters first, replayed below
    })
    const app = s.sabt.app
    const people: { id: string; nationalId: string; mobile: string; submitted: string[] }[] = []
    const forms = [
      (m: string) => m, // 0912…
      (m: string) => `+98${m.slice(1)}`,
      (m: string) => `0098${m.slice(1)}`,
      (m: string) => persianDigits(m),
    ]
    for (let i = 0; i < 12; i++) {
      const reg = registration() as Record<string, string>
      const nid = reg.national_id!
      const mobile = reg.mobile!
      const sentNid = i % 3 === 0 ? persianDigits(nid) : nid
      const sentMobile = forms[i % forms.length]!(mobile)
      const res = await app.inject({
        method: 'POST',
        url: '/v1/registrations',
        payload: { ...reg, national_id: sentNid, mobile: sentMobile },
      })
      expect(res.statusCode).toBe(202)
      people.push({
        id: res.json<{ id: string }>().id,
        nationalId: nid,
        mobile,
        submitted: [sentNid, sentMobile],
      })
    }
    // Bad input quoting personal data back: refused, and not logged in full either.
    const bad = registration({ national_id: '0499370898', mobile: '0912345' }) as Record<string, string>
    expect((await app.inject({ method: 'POST', url: '/v1/registrations', payload: bad })).statusCode).toBe(
      422,
    )

    const ids = people.map((p) => p.id)
    await waitFor(async () => (await s!.stats()).eligibility!.calls >= 1, 'eligibility asked')
    const dead = await waitFor(async () => {
      const rows = await sql<{ n: number }>(
        s!.sabt.env.DATABASE_URL,
        "SELECT count(*)::int AS n FROM check_results WHERE check_name = 'eligibility' AND outcome = 'error'",
      )
      return rows[0]!.n > 0 && rows[0]!.n
    }, 'some dead letters')
    expect(dead).toBeGreaterThan(0)
    await s.knobs('eligibility', { error_rate: 0 })
    await waitFor(
      async () => {
        const r = await app.inject({
          method: 'POST',
          url: '/admin/dead/replay',
          headers: { authorization: `Bearer ${s!.adminToken}` },
          payload: {},
        })
        const rows = await sql<{ id: string; status: string }>(
          s!.sabt.env.DATABASE_URL,
          'SELECT id::text, status FROM registrations WHERE id = ANY($1)',
          [ids],
        )
        return (
          r.statusCode === 200 &&
          rows.length === ids.length &&
          rows.every((x) => x.status === 'accepted' || x.status === 'rejected')
        )
      },
      'every verdict, after replaying the dead letters',
      40_000,
    )

    // The operator looks someone up by national id (Persian digits) and by id; a wrong login too.
    const auth = { authorization: `Bearer ${s.adminToken}` }
    for (const q of [persianDigits(people[0]!.nationalId), people[1]!.nationalId, people[2]!.id]) {
      const r = await app.inject({ method: 'POST', url: '/admin/lookup', headers: auth, payload: { q } })
      expect(r.json().kind).toBe('records')
    }
    await app.inject({
      method: 'POST',
      url: '/dashboard/login',
      headers: { host: 'h:1', origin: 'http://h:1', 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${people[3]!.nationalId}`,
    })
    await s.sabt.stop() // shutdown lines too

    // Every line is one JSON event.
    expect(lines.length).toBeGreaterThan(50)
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    for (const e of events) expect(typeof e.level === 'string' && typeof e.time === 'string').toBe(true)

    // No full national id or mobile, in any form it was sent or stored in.
    const secrets = [
      ...people.flatMap((p) => [
        p.nationalId,
        persianDigits(p.nationalId),
        p.mobile,
        p.mobile.slice(1),
        persianDigits(p.mobile),
        ...p.submitted,
      ]),
      bad.national_id!,
    ]
    const all = lines.join('\n')
    for (const secret of secrets)
      expect({ secret, found: all.includes(secret) }).toEqual({ secret, found: false })
    expect(all).not.toMatch(/(?<![0-9a-f-])[0-9]{10}(?![0-9a-f-])/)

    // The registration id, whole, follows a registration from role to role.
    for (const id of ids.slice(0, 4)) {
      const mine = events.filter((e) => e.registration_id === id).map((e) => e.event)
      expect(mine).toEqual(
        expect.arrayContaining(['intake.accepted', 'recorder.recorded', 'checker.outcome']),
      )
    }
    const replayed = events.filter((e) => e.event === 'dead.replay').map((e) => e.registration_id)
    expect(replayed.length).toBeGreaterThan(0)
    for (const id of replayed) expect(ids).toContain(id)
    // Operator lookups are audited by registration id, never by what was typed.
    const audits = events.filter((e) => e.event === 'admin.lookup')
    expect(audits.map((a) => a.by)).toEqual(['national_id', 'national_id', 'id'])
    expect(audits[0]!.registration_ids).toEqual([people[0]!.id])
    expect(events.some((e) => e.event === 'admin.login_failed')).toBe(true)
  })
})
