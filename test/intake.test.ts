import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isUuidV7 } from '../src/domain/uuid7.js'
import {
  captureLogger,
  partnerKey,
  registration,
  sql,
  startTestSabt,
  type TestSabt,
  testEnv,
  waitFor,
} from './support/harness.js'

// The whole intake path, in-process, against the real RabbitMQ and PostgreSQL; run once with one
// intake queue and once sharded over four (a person's submissions must stay in one shard).
describe.each([1, 4])('intake → recorder → PostgreSQL (intake shards: %i)', (shards) => {
  let sabt: TestSabt
  const logs = captureLogger('debug')

  beforeAll(async () => {
    sabt = await startTestSabt({
      roles: ['gateway', 'recorder', 'status'],
      env: testEnv({ SABT_INTAKE_SHARDS: String(shards), LOG_LEVEL: 'debug' }),
      log: logs.log,
    })
    key = await partnerKey(sabt)
  })
  afterAll(async () => {
    await sabt?.cleanup()
  })

  let key = ''
  const post = (body: unknown) =>
    sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: body as Record<string, unknown> })
  const status = (id: string) => sabt.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })

  it('answers 202 with a UUIDv7 after the confirm, and the registration reaches PostgreSQL', async () => {
    const reg = registration({ national_id: '۰۴۹۹۳۷۰۸۹۹', mobile: '+989121234567', first_name: 'علي' })
    const res = await post(reg)
    expect(res.statusCode).toBe(202)
    const body = res.json<{ id: string; status_url: string }>()
    expect(isUuidV7(body.id)).toBe(true)
    expect(body.status_url).toBe(`/v1/registrations/${body.id}`)
    expect(res.headers.location).toBe(body.status_url)

    const rows = await waitFor(async () => {
      const r = await sql<{ status: string; first_name: string; birth_date: string }>(
        sabt.env.DATABASE_URL,
        "SELECT status, first_name, to_char(birth_date, 'YYYY-MM-DD') AS birth_date FROM registrations WHERE id = $1",
        [body.id],
      )
      return r.length === 1 && r
    }, 'the registration to be recorded')
    expect(rows[0]).toEqual({ status: 'recorded', first_name: 'علی', birth_date: '1990-03-21' })

    const st = await status(body.id)
    expect(st.statusCode).toBe(200)
    expect(st.json()).toMatchObject({ id: body.id, campaign: 'demo', status: 'recorded' })
    expect(st.json().checks.map((c: { check: string; outcome: string }) => [c.check, c.outcome])).toEqual([
      ['identity', 'pending'],
      ['mobile', 'pending'],
    ])
  })

  it('keeps a second submission of the same person waiting beside the unchecked first, showing nothing of it', async () => {
    const nid = registration().national_id
    const first = (await post(registration({ national_id: nid }))).json<{ id: string }>().id
    await waitFor(() => status(first).then((r) => r.statusCode === 200), 'first recorded')
    const second = (await post(registration({ national_id: nid, mobile: '09350000000' }))).json<{
      id: string
    }>().id
    const waiting = await waitFor(
      () => status(second).then((r) => r.statusCode === 200 && r),
      'the second to be recorded',
    )
    expect(waiting.json()).toEqual({
      id: second,
      campaign: 'demo',
      status: 'waiting',
      received_at: expect.any(String),
      recorded_at: expect.any(String),
    })
    expect(waiting.body).not.toContain(first)
    const count = await sql<{ n: number }>(
      sabt.env.DATABASE_URL,
      'SELECT count(*)::int AS n FROM registrations WHERE id = ANY($1)',
      [[first, second]],
    )
    expect(count[0]!.n).toBe(1)
  })

  it('stores a later submission of a person already accepted as a duplicate pointing at the first, showing nothing of it', async () => {
    const nid = registration().national_id
    const first = (await post(registration({ national_id: nid, campaign: 'nocheck' }))).json<{ id: string }>()
      .id
    await waitFor(() => status(first).then((r) => r.statusCode === 200), 'first recorded')
    const second = (await post(registration({ national_id: nid, campaign: 'nocheck' }))).json<{
      id: string
    }>().id
    const dup = await waitFor(
      () => status(second).then((r) => r.statusCode === 200 && r),
      'the duplicate to be recorded',
    )
    expect(dup.json()).toMatchObject({ id: second, status: 'duplicate', campaign: 'nocheck' })
    expect(dup.body).not.toContain(first)
    const original = await sql<{ original_id: string }>(
      sabt.env.DATABASE_URL,
      'SELECT original_id::text FROM duplicates WHERE id = $1',
      [second],
    )
    expect(original).toEqual([{ original_id: first }])
  })

  it('keeps the earliest when one person submits many times at once (first come, first served)', async () => {
    const nid = registration().national_id
    const ids = await Promise.all(
      Array.from({ length: 5 }, () =>
        post(registration({ national_id: nid })).then((r) => r.json<{ id: string }>().id),
      ),
    )
    const sorted = [...ids].sort() // UUIDv7 order is arrival order
    const n = async (table: string) =>
      (
        await sql<{ n: number }>(
          sabt.env.DATABASE_URL,
          `SELECT count(*)::int AS n FROM ${table} WHERE id = ANY($1)`,
          [ids],
        )
      )[0]!.n
    // The record is unchecked here (no checker): two more wait beside it (max_records_per_person
    // is 3), the rest are duplicates.
    await waitFor(
      async () => (await n('waiting')) === 2 && (await n('duplicates')) === 2,
      'two waiting, two duplicates',
    )
    const rec = await sql<{ id: string }>(
      sabt.env.DATABASE_URL,
      'SELECT id::text FROM registrations WHERE id = ANY($1)',
      [ids],
    )
    expect(rec).toEqual([{ id: sorted[0] }])
    const originals = await sql<{ original_id: string }>(
      sabt.env.DATABASE_URL,
      'SELECT DISTINCT original_id::text FROM duplicates WHERE id = ANY($1)',
      [ids],
    )
    expect(originals).toEqual([{ original_id: sorted[0] }])
  })

  it('accepts the same person in two campaigns', async () => {
    const nid = registration().national_id
    const a = (await post(registration({ national_id: nid }))).json<{ id: string }>().id
    const b = (await post(registration({ national_id: nid, campaign: 'nocheck' }))).json<{ id: string }>().id
    await waitFor(
      () => status(b).then((r) => r.statusCode === 200 && r.json().status === 'accepted'),
      'nocheck accepted',
    )
    const ra = await waitFor(
      () => status(a).then((r) => r.statusCode === 200 && r.json<{ status: string }>()),
      'a recorded',
    )
    expect(ra.status).toBe('recorded')
  })

  it('stores no clear national id or mobile: sealed, with a blind index', async () => {
    const reg = registration()
    const id = (await post(reg)).json<{ id: string }>().id
    await waitFor(() => status(id).then((r) => r.statusCode === 200), 'recorded')
    const rows = await sql<{ row: string }>(
      sabt.env.DATABASE_URL,
      'SELECT r::text AS row FROM registrations r WHERE id = $1',
      [id],
    )
    expect(rows[0]!.row).not.toContain(reg.national_id as string)
    expect(rows[0]!.row).not.toContain((reg.mobile as string).slice(1))
    expect(rows[0]!.row).not.toContain(Buffer.from(reg.national_id as string).toString('hex'))
  })

  it('answers 202 queued for a fresh id not yet recorded, 404 for an unknown one, 400 for a non-id', async () => {
    const { v7 } = await import('uuid')
    const fresh = v7()
    const q = await status(fresh)
    expect(q.statusCode).toBe(202)
    expect(q.json()).toMatchObject({ id: fresh, status: 'queued' })
    const old = v7({ msecs: Date.now() - 3_600_000 })
    expect((await status(old)).statusCode).toBe(404)
    expect((await status('0190b6a3-0000-4000-8000-000000000000')).statusCode).toBe(404) // a v4: never ours
    const bad = await status('not-an-id')
    expect(bad.statusCode).toBe(400)
    expect(bad.json()).toMatchObject({ code: 'SABT_INVALID_ID', errors: [{ field: 'id', rule: 'uuid' }] })
  })

  it('takes a batch and answers per record', async () => {
    const nid = registration().national_id
    const res = await sabt.app.inject({
      method: 'POST',
      url: '/v1/registrations/batch',
      headers: { authorization: `Bearer ${key}` },
      payload: {
        records: [
          registration({ national_id: nid }),
          registration({ national_id: '0499370898' }),
          registration({ extra: true }),
          registration({ campaign: 'nope' }),
          registration(),
        ],
      },
    })
    expect(res.statusCode).toBe(207)
    const body = res.json<{ accepted: number; rejected: number; results: Record<string, unknown>[] }>()
    expect(body.accepted).toBe(2)
    expect(body.rejected).toBe(3)
    expect(body.results.map((r) => r.status)).toEqual([202, 422, 422, 422, 202])
    expect(body.results[1]).toMatchObject({
      code: 'SABT_VALIDATION',
      errors: [{ field: 'national_id', rule: 'checksum' }],
    })
    expect(body.results[2]).toMatchObject({ errors: [{ field: 'extra', rule: 'unknown_field' }] })
    expect(body.results[3]).toMatchObject({ code: 'SABT_UNKNOWN_CAMPAIGN', errors: [{ field: 'campaign' }] })
    const ids = [body.results[0]!.id, body.results[4]!.id] as string[]
    await waitFor(async () => {
      const r = await sql<{ n: number }>(
        sabt.env.DATABASE_URL,
        'SELECT count(*)::int AS n FROM registrations WHERE id = ANY($1)',
        [ids],
      )
      return r[0]!.n === 2
    }, 'both accepted records written')

    const all = await sabt.app.inject({
      method: 'POST',
      url: '/v1/registrations/batch',
      headers: { authorization: `Bearer ${key}` },
      payload: { records: [registration(), registration()] },
    })
    expect(all.statusCode).toBe(202)
  })

  it('refuses a batch over the record limit, naming the rule', async () => {
    const records = Array.from({ length: 1001 }, () => ({}))
    const res = await sabt.app.inject({
      method: 'POST',
      url: '/v1/registrations/batch',
      headers: { authorization: `Bearer ${key}` },
      payload: { records },
    })
    expect(res.statusCode).toBe(422)
    expect(res.json()).toMatchObject({ errors: [{ field: 'records', rule: 'max_items' }] })
  })

  it('never writes a full national id or mobile number to the logs', async () => {
    const reg = registration({ national_id: '0084575948', mobile: '09351112233' })
    await post(reg)
    await post({ ...reg, first_name: 'X1' }) // a rejected one too
    await waitFor(() => logs.lines.length > 0, 'some log lines')
    const all = logs.lines.join('\n')
    expect(all).not.toContain('0084575948')
    expect(all).not.toContain('09351112233')
    expect(all).not.toContain('9351112233')
  })
})
