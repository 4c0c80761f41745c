import { validateNationalIdChecksum } from '@persian-tools/persian-tools'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveSecrets } from '../src/config/secrets.js'
import { Sealer } from '../src/privacy/sealing.js'
import {
  nationalId as freshNationalId,
  partnerKey,
  queueDepth,
  sql,
  startTestSabt,
  type TestSabt,
  testConfig,
  testEnv,
  waitFor,
} from './support/harness.js'
import {
  bodyDamage,
  contentType,
  damage,
  FIELDS,
  type J,
  jsonText,
  jsonValue,
  key,
  keyText,
  OPEN_CAMPAIGNS,
  registrationEntries,
  registrationJ,
  spellDigits,
  validRegistration,
} from './support/hostile-json.js'
import { type ErrorBody, expectErrorBody, expectedFor, hasForbiddenKey } from './support/hostile-oracle.js'

/*
 * Hostile input, property-based: random and adversarial JSON thrown at the intake, with the
 * gateway AND the recorder running, so what is accepted is also written. The properties:
 *   - never a 5xx, never a crash; every error is JSON naming a field and a rule, and the field is
 *     in what was sent;
 *   - the answer class is the one an independent oracle expects (415 → 413 → 400 encoding →
 *     400 syntax → 400 forbidden key → 202/422);
 *   - a record gets the same answer alone and inside a batch;
 *   - a registration accepted with ASCII digits gives the same record with Persian/Arabic digits;
 *   - at the end: the intake is drained, nothing was dead-lettered, every 202 is in PostgreSQL,
 *     obeys the domain rules and holds what was sent (normalised, never silently altered).
 *
 * Fixed seed, and run counts that keep this file near 10 s in `npm test`. To search longer:
 *   SABT_FUZZ_RUNS=20 npx vitest run test/fuzz.test.ts          (20× the default runs)
 *   SABT_FUZZ_SEED=12345 SABT_FUZZ_RUNS=5 npx vitest run test/fuzz.test.ts
 * A failure prints the seed and the shrunk counterexample; see docs/testing.md.
 */
const SEED = Number(process.env.SABT_FUZZ_SEED ?? 20261125)
const SCALE = Number(process.env.SABT_FUZZ_RUNS ?? 1)
const runs = (n: number) => ({ seed: SEED, numRuns: Math.max(1, Math.round(n * SCALE)) })
// Room for shrinking a failure to its smallest form (each step is a few requests).
const TIMEOUT_MS = 120_000 * Math.max(1, SCALE)

const BODY_LIMIT = 16_384
const BATCH_BODY_LIMIT = 262_144
const BATCH_MAX_RECORDS = 40

interface Accepted {
  via: string
  sent: Record<string, unknown>
}

describe('hostile input: the intake refuses clearly, accepts only what is valid, and loses nothing', () => {
  let sabt: TestSabt
  const accepted = new Map<string, Accepted>()

  beforeAll(async () => {
    sabt = await startTestSabt({
      roles: ['gateway', 'recorder'],
      env: testEnv({
        SABT_BODY_LIMIT: String(BODY_LIMIT),
        SABT_BATCH_BODY_LIMIT: String(BATCH_BODY_LIMIT),
        SABT_BATCH_MAX_RECORDS: String(BATCH_MAX_RECORDS),
        // Thousands of generated requests from one address: the per-client limit would answer them.
        SABT_CLIENT_RATE: '0',
      }),
      config: testConfig({
        retry_tiers: ['1s'],
        checks: { identity: { provider: 'identity', url: 'http://127.0.0.1:9/identity' } },
        campaigns: {
          demo: { title: 'Demo', checks: ['identity'] },
          nocheck: { title: 'No checks' },
          later: { title: 'Not open yet', opens_at: '2999-01-01T00:00:00Z' },
          over: { title: 'Closed', closes_at: '2001-01-01T00:00:00Z' },
          'fa-ascii': { title: 'Persian digits: the ASCII submission' },
          'fa-persian': { title: 'Persian digits: the Persian submission' },
        },
      }),
    })
    // Batch intake is for partners: the fuzzer holds a key with a limit it never reaches.
    partner = await partnerKey(sabt)
  })
  afterAll(async () => {
    await sabt?.cleanup()
  })

  let partner = ''
  const send = (url: string, payload: Buffer, type: string | null) =>
    sabt.app.inject({
      method: 'POST',
      url,
      payload,
      headers: { ...(type === null ? {} : { 'content-type': type }), authorization: `Bearer ${partner}` },
    })

  /** Checks one answer of the single-registration route against the oracle; returns it parsed. */
  function checkSingle(
    res: { statusCode: number; headers: Record<string, unknown>; body: string },
    payload: Buffer,
    type: string | null,
  ): { status: number; body: ErrorBody | { id: string } } {
    expect(res.statusCode, res.body).toBeLessThan(500)
    expect(String(res.headers['content-type'])).toMatch(/^application\/json/)
    const body = JSON.parse(res.body)
    const exp = expectedFor(payload, type, BODY_LIMIT)
    if (exp.status !== 'parsed') {
      expect({ status: res.statusCode, code: body.code }).toEqual({ status: exp.status, code: exp.code })
      if ('rule' in exp) expect(body.errors.map((e: { rule: string }) => e.rule)).toEqual([exp.rule])
      expectErrorBody(res.statusCode, body)
    } else if (res.statusCode === 202) {
      accepted.set(body.id, { via: 'single', sent: exp.value as Record<string, unknown> })
    } else {
      expect(res.statusCode, res.body).toBe(422)
      expectErrorBody(res.statusCode, body, exp)
    }
    return { status: res.statusCode, body }
  }

  it(
    'POST /v1/registrations: never a 5xx; every refusal names a field in what was sent',
    async () => {
      await fc.assert(
        fc.asyncProperty(registrationJ, bodyDamage, contentType, async (doc, dmg, type) => {
          const payload = damage(jsonText(doc), dmg)
          checkSingle(await send('/v1/registrations', payload, type), payload, type)
        }),
        runs(600),
      )
    },
    TIMEOUT_MS,
  )

  it(
    'POST /v1/registrations/batch: never a 5xx; each record answered on its own, naming its fields',
    async () => {
      const envelope: fc.Arbitrary<J> = fc.oneof(
        {
          weight: 6,
          arbitrary: fc
            .array(registrationJ, { minLength: 1, maxLength: 8 })
            .map((arr): J => ({ obj: [[key('records'), { arr }]] })),
        },
        // Extra keys beside records (forbidden ones too), records of the wrong type, too many, none.
        {
          weight: 2,
          arbitrary: fc.tuple(fc.array(registrationJ, { maxLength: 3 }), keyText, jsonValue).map(
            ([arr, k, v]): J => ({
              obj: [
                [key('records'), { arr }],
                [k, v],
              ],
            }),
          ),
        },
        { weight: 1, arbitrary: jsonValue.map((v): J => ({ obj: [[key('records'), v]] })) },
        {
          weight: 1,
          arbitrary: fc.constant<J>({
            obj: [
              [key('records'), { arr: Array.from({ length: BATCH_MAX_RECORDS + 1 }, () => ({ obj: [] })) }],
            ],
          }),
        },
        { weight: 1, arbitrary: jsonValue },
      )
      await fc.assert(
        fc.asyncProperty(envelope, bodyDamage, contentType, async (doc, dmg, type) => {
          const payload = damage(jsonText(doc), dmg)
          const res = await send('/v1/registrations/batch', payload, type)
          expect(res.statusCode, res.body).toBeLessThan(500)
          const body = JSON.parse(res.body)
          const exp = expectedFor(payload, type, BATCH_BODY_LIMIT)
          if (exp.status !== 'parsed') {
            expect({ status: res.statusCode, code: body.code }).toEqual({
              status: exp.status,
              code: exp.code,
            })
            expectErrorBody(res.statusCode, body)
            return
          }
          if (res.statusCode !== 202 && res.statusCode !== 207) {
            expect(res.statusCode, res.body).toBe(422) // the envelope itself
            expectErrorBody(res.statusCode, body, exp)
            return
          }
          const records = (exp.value as { records: unknown[] }).records
          expect(body.results).toHaveLength(records.length)
          expect(body.accepted + body.rejected).toBe(records.length)
          expect(res.statusCode).toBe(body.rejected === 0 ? 202 : 207)
          body.results.forEach((r: { index: number; status: number; id?: string } & ErrorBody, i: number) => {
            expect(r.index).toBe(i)
            if (r.status === 202) {
              accepted.set(r.id!, { via: 'batch', sent: records[i] as Record<string, unknown> })
              return
            }
            expect(r.status, JSON.stringify(r)).toBe(422)
            expectErrorBody(r.status, { ...r, statusCode: r.status }, { value: records[i] })
          })
        }),
        runs(200),
      )
    },
    TIMEOUT_MS,
  )

  it(
    'a record gets the same answer alone and inside a batch',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(registrationEntries, { minLength: 1, maxLength: 5 }), async (entries) => {
          const texts = entries.map((obj) => jsonText({ obj }))
          const batch = await send(
            '/v1/registrations/batch',
            Buffer.from(`{"records":[${texts.join(',')}]}`),
            'application/json',
          )
          expect(batch.statusCode, batch.body).toBeLessThan(500)
          const alone = await Promise.all(
            texts.map(async (t) => {
              const payload = Buffer.from(t)
              return checkSingle(
                await send('/v1/registrations', payload, 'application/json'),
                payload,
                'application/json',
              )
            }),
          )
          const summary = (status: number, b: ErrorBody | { id: string }) =>
            status === 202
              ? { status }
              : {
                  status,
                  code: (b as ErrorBody).code,
                  errors: ((b as ErrorBody).errors ?? []).map((e) => `${e.field}:${e.rule}`).sort(),
                }
          if (batch.statusCode === 413) return // the records together are over the batch limit
          if (batch.statusCode === 400) {
            // A forbidden key refuses the whole batch: some record alone says so too (or is too large alone).
            expect(alone.some((a) => a.status === 400 || a.status === 413)).toBe(true)
            return
          }
          expect([202, 207], batch.body).toContain(batch.statusCode)
          const body = batch.json()
          texts.forEach((t, i) => {
            const r = body.results[i]
            if (r.status === 202) accepted.set(r.id, { via: 'batch', sent: JSON.parse(t) })
            if (Buffer.byteLength(t) > BODY_LIMIT) return // too large alone, not in a batch
            expect(summary(r.status, r), t).toEqual(summary(alone[i]!.status, alone[i]!.body))
          })
        }),
        runs(80),
      )
    },
    TIMEOUT_MS,
  )

  const persianPairs: [string, string][] = []

  it(
    'a registration accepted with ASCII digits gives the same record with Persian or Arabic digits',
    async () => {
      // Digits are normalised in national_id, mobile and birth_date; attributes are free text, kept as sent.
      const scripts = fc.array(fc.constantFrom('persian' as const, 'arabic' as const), {
        minLength: 1,
        maxLength: 3,
      })
      await fc.assert(
        fc.asyncProperty(validRegistration, scripts, async (entries, script) => {
          // Through JSON.stringify and back, so what is kept as sent is what is sent (1e400 → null).
          const reg = JSON.parse(JSON.stringify(JSON.parse(jsonText({ obj: entries })))) as Record<
            string,
            unknown
          >
          const ascii = {
            ...reg,
            campaign: 'fa-ascii',
            national_id: freshNationalId(), // one person per pair: a repeat would be a duplicate, not a record
            mobile: toAscii(String(reg.mobile)),
            birth_date: toAscii(String(reg.birth_date)),
          }
          const first = await send(
            '/v1/registrations',
            Buffer.from(JSON.stringify(ascii)),
            'application/json',
          )
          fc.pre(first.statusCode === 202) // the property is about what the gateway accepts
          accepted.set(first.json().id, { via: 'fa-ascii', sent: ascii })
          const persian = {
            ...ascii,
            campaign: 'fa-persian',
            national_id: spellDigits(ascii.national_id, script),
            mobile: spellDigits(ascii.mobile, script),
            birth_date: spellDigits(ascii.birth_date, script),
          }
          const second = await send(
            '/v1/registrations',
            Buffer.from(JSON.stringify(persian)),
            'application/json',
          )
          expect(second.statusCode, second.body).toBe(202)
          accepted.set(second.json().id, { via: 'fa-persian', sent: persian })
          persianPairs.push([first.json().id, second.json().id])
        }),
        runs(60),
      )
      expect(persianPairs.length).toBeGreaterThan(0)
      const rows = await recordsOf(persianPairs.flat())
      for (const [a, b] of persianPairs) {
        const { id: _a, campaign: ca, ...ra } = rows.get(a)!
        const { id: _b, campaign: cb, ...rb } = rows.get(b)!
        expect([ca, cb]).toEqual(['fa-ascii', 'fa-persian'])
        expect(rb).toEqual(ra)
      }
    },
    TIMEOUT_MS,
  )

  it('the gateway still takes a plain registration (nothing above broke it)', async () => {
    const res = await sabt.app.inject({ method: 'GET', url: '/healthz' })
    expect(res.statusCode).toBe(200)
    const reg = {
      campaign: 'nocheck',
      national_id: freshNationalId(),
      mobile: '09121234567',
      first_name: 'علی',
      last_name: 'رضایی',
      birth_date: '1990-03-21',
    }
    const ok = await send('/v1/registrations', Buffer.from(JSON.stringify(reg)), 'application/json')
    expect(ok.statusCode, ok.body).toBe(202)
    accepted.set(ok.json().id, { via: 'plain', sent: reg })
  })

  // ---- what was accepted was written, and is valid -------------------------------------------

  interface StoredRecord {
    id: string
    campaign: string
    national_id: string
    mobile: string
    first_name: string
    last_name: string
    birth_date: string
    attributes: Record<string, unknown> | null
  }

  /**
   * Waits for these ids to be written (records, duplicates, or submissions waiting beside a record:
   * no checker runs here) and opens the sealed fields of the records and the waiting ones.
   */
  async function recordsOf(ids: string[]): Promise<Map<string, StoredRecord>> {
    const db = sabt.env.DATABASE_URL
    const dead = sabt.mq!.names.intakeDead
    const outcome = await waitFor(
      async () => {
        // Fail fast: a dead letter is an accepted registration PostgreSQL refused, never written.
        if ((await queueDepth(dead)) > 0) return 'dead-lettered'
        const n = await sql<{ n: number }>(
          db,
          `SELECT (SELECT count(*) FROM registrations WHERE id = ANY($1)) +
                  (SELECT count(*) FROM duplicates WHERE id = ANY($1)) +
                  (SELECT count(*) FROM waiting WHERE id = ANY($1))::int AS n`,
          [ids],
        )
        return Number(n[0]!.n) === ids.length && 'written'
      },
      `${ids.length} accepted registrations to be written`,
      30_000,
      100,
    )
    expect(outcome, 'an accepted registration was dead-lettered: PostgreSQL refused it').toBe('written')
    const sealer = new Sealer(resolveSecrets(sabt.env).dataKeys)
    const rows = await sql<{
      id: string
      campaign: string
      national_id_sealed: Buffer
      mobile_sealed: Buffer
      key_id: string
      first_name: string
      last_name: string
      birth_date: string
      attributes: Record<string, unknown> | null
    }>(
      db,
      `SELECT id::text, campaign, national_id_sealed, mobile_sealed, key_id, first_name, last_name,
              to_char(birth_date, 'YYYY-MM-DD') AS birth_date, attributes
       FROM registrations WHERE id = ANY($1)
       UNION ALL
       SELECT id::text, campaign, national_id_sealed, mobile_sealed, key_id, first_name, last_name,
              to_char(birth_date, 'YYYY-MM-DD') AS birth_date, attributes
       FROM waiting WHERE id = ANY($1)`,
      [ids],
    )
    return new Map(
      rows.map((r) => [
        r.id,
        {
          id: r.id,
          campaign: r.campaign,
          national_id: sealer.open(r.national_id_sealed, r.key_id, `${r.id}:national_id`),
          mobile: sealer.open(r.mobile_sealed, r.key_id, `${r.id}:mobile`),
          first_name: r.first_name,
          last_name: r.last_name,
          birth_date: r.birth_date,
          attributes: r.attributes,
        },
      ]),
    )
  }

  it('every 202 is in PostgreSQL, obeys the domain rules and holds what was sent; nothing dead-lettered', async () => {
    expect(accepted.size).toBeGreaterThan(50) // the generators do reach the valid side
    const ids = [...accepted.keys()]
    const records = await recordsOf(ids)
    const dups = await sql<{ id: string; original_id: string }>(
      sabt.env.DATABASE_URL,
      'SELECT id::text, original_id::text FROM duplicates WHERE id = ANY($1)',
      [ids],
    )
    for (const d of dups) {
      // A duplicate points at a record of the same person (the original may be any earlier 202).
      const original = records.get(d.original_id) ?? (await recordsOf([d.original_id])).get(d.original_id)
      expect(original).toBeDefined()
      expect(original!.national_id).toBe(toAscii(String(accepted.get(d.id)!.sent.national_id)).trim())
    }
    const today = new Date().toISOString().slice(0, 10)
    for (const [id, rec] of records) {
      const sent = accepted.get(id)!.sent
      const ctx = JSON.stringify({ via: accepted.get(id)!.via, sent })
      // The domain rules, checked against an independent national-id implementation.
      expect(rec.national_id, ctx).toMatch(/^[0-9]{10}$/)
      expect(validateNationalIdChecksum(rec.national_id) && !/^(\d)\1{9}$/.test(rec.national_id), ctx).toBe(
        true,
      )
      expect(rec.mobile, ctx).toMatch(/^09[0-9]{9}$/)
      expect(rec.birth_date, ctx).toMatch(/^\d{4}-\d{2}-\d{2}$/)
      expect(rec.birth_date >= '1900-01-01' && rec.birth_date < today, ctx).toBe(true)
      expect(new Date(`${rec.birth_date}T00:00:00Z`).toISOString().slice(0, 10), ctx).toBe(rec.birth_date)
      for (const name of [rec.first_name, rec.last_name]) {
        expect(name.length > 0 && name.length <= 64, ctx).toBe(true)
        expect(name, ctx).toBe(name.normalize('NFC'))
        expect(name, ctx).not.toMatch(NOT_IN_A_NAME)
      }
      // What was sent, normalised, and nothing else.
      expect(OPEN_CAMPAIGNS.includes(rec.campaign as never) || rec.campaign.startsWith('fa-'), ctx).toBe(true)
      expect(rec.campaign, ctx).toBe(sent.campaign)
      expect(rec.national_id, ctx).toBe(toAscii(String(sent.national_id)).trim())
      expect(rec.mobile.slice(1), ctx).toBe(toAscii(String(sent.mobile)).replace(/\D/g, '').slice(-10))
      expect(rec.birth_date, ctx).toBe(toAscii(String(sent.birth_date)).trim())
      expect(rec.first_name, ctx).toBe(normalName(String(sent.first_name)))
      expect(rec.last_name, ctx).toBe(normalName(String(sent.last_name)))
      expect(rec.attributes, ctx).toEqual(zeroSigned(sent.attributes ?? null))
      for (const f of FIELDS) expect(Object.hasOwn(sent, f), ctx).toBe(true)
      expect(hasForbiddenKey(sent), ctx).toBe(false)
    }
    // Drained: nothing left in the intake, nothing in its dead letters.
    for (const q of sabt.mq!.names.intakeQueues)
      await waitFor(async () => (await queueDepth(q)) === 0, `${q} drained`)
    expect(await queueDepth(sabt.mq!.names.intakeDead)).toBe(0)
  })
})

// biome-ignore lint/suspicious/noControlCharactersInRegex: what a stored name must never hold
const NOT_IN_A_NAME = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]|\p{Cs}|^\s|\s$|\s\s|[يكى]/u

/** JSON's -0 is 0 once stored (jsonb is numeric): the one change a number may go through. */
function zeroSigned(v: unknown): unknown {
  if (Object.is(v, -0)) return 0
  if (v === null || typeof v !== 'object') return v
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, zeroSigned(x)]))
}

function toAscii(s: string): string {
  return s
    .replace(/[۰-۹]/g, (d) => String(d.charCodeAt(0) - 0x06f0))
    .replace(/[٠-٩]/g, (d) => String(d.charCodeAt(0) - 0x0660))
}

/** Names as the domain stores them: trimmed, inner whitespace one space, NFC, Persian yeh and kaf. */
function normalName(s: string): string {
  return s.trim().replace(/\s+/g, ' ').normalize('NFC').replace(/[يى]/g, 'ی').replace(/ك/g, 'ک')
}
