import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { showTrackingCode } from '../src/db/citizen.js'
import { createPool } from '../src/db/pool.js'
import { newUuidV7 } from '../src/domain/uuid7.js'
import { createLogger } from '../src/observability/logger.js'
import { eraseExpired, startRetentionSweeper } from '../src/operations/index.js'
import { sealPersonal } from '../src/privacy/personal-fields.js'
import { parseDataKeys, Sealer } from '../src/privacy/sealing.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { captureLogger, nationalId, registration, sql, waitFor } from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

type Reg = Record<string, string>

/** "Am I registered?" (issue 14 item 2) and one-time codes ahead of receipts (item 1), real broker and database. */
describe('citizen lookup', () => {
  const systems: ChecksSystem[] = []
  afterEach(async () => {
    for (const s of systems.splice(0)) await s.cleanup()
  })
  async function system(opts: Parameters<typeof startChecksSystem>[0] = {}): Promise<ChecksSystem> {
    const s = await startChecksSystem({
      sms: {},
      campaigns: { demo: { title: 'Demo' } },
      ...opts,
      env: { SABT_SMS_SWEEP_MS: '100', SABT_CLIENT_RATE: '0', ...opts.env },
    })
    systems.push(s)
    return s
  }
  async function register(s: ChecksSystem): Promise<{ id: string; reg: Reg }> {
    const reg = registration() as Reg
    const res = await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
    expect(res.statusCode).toBe(202)
    const id = res.json<{ id: string }>().id
    await waitFor(
      async () =>
        (await sql(s.sabt.env.DATABASE_URL, 'SELECT 1 FROM registrations WHERE id = $1', [id])).length === 1,
      'recorded',
    )
    return { id, reg }
  }
  const lookup = (s: ChecksSystem, body: Record<string, string>, path = 'lookup', ip = '198.51.100.7') =>
    s.sabt.app.inject({
      method: 'POST',
      url: `/v1/campaigns/demo/${path}`,
      payload: body,
      remoteAddress: ip,
    })
  const otpFor = (s: ChecksSystem, mobile: string) =>
    [...s.sim.sms.delivered.values()].filter((d) => d.reference.startsWith('otp:') && d.to === mobile)
  const codeIn = (text: string) => /([0-9]{6})/.exec(text)![1]!
  /** What a client sees of an answer, minus what differs by request anyway. */
  const seen = (r: Awaited<ReturnType<typeof lookup>>) => {
    const { date: _d, 'x-request-id': _r, 'content-length': _l, ...headers } = r.headers
    return { status: r.statusCode, body: r.body, headers }
  }

  it('answers identically for a registered and an unregistered person until the code is verified', async () => {
    const s = await system()
    const { id, reg } = await register(s)
    const asked = { national_id: reg.national_id!, mobile: reg.mobile! }
    const stranger = { national_id: nationalId(), mobile: '09121234567' }
    const wrongMobile = { national_id: reg.national_id!, mobile: '09127654321' }
    const a = await lookup(s, asked)
    const b = await lookup(s, stranger)
    const c = await lookup(s, wrongMobile)
    expect(a.statusCode).toBe(202)
    expect(seen(b)).toEqual(seen(a))
    expect(seen(c)).toEqual(seen(a))
    // Only the registered person's mobile gets a code.
    const sms = await waitFor(() => otpFor(s, reg.mobile!)[0], 'the one-time code')
    expect(otpFor(s, '09121234567')).toHaveLength(0)
    expect(otpFor(s, '09127654321')).toHaveLength(0)
    const code = codeIn(sms.text)
    // Stored hashed: the sealed copy is gone once sent, and the code is nowhere in the table.
    const rows = await sql<{ code_sealed: Buffer | null; code_hash: Buffer | null }>(
      s.sabt.env.DATABASE_URL,
      'SELECT code_sealed, code_hash FROM lookup_codes WHERE registration_id IS NOT NULL',
    )
    expect(rows).toHaveLength(1)
    await waitFor(
      async () =>
        (
          await sql(
            s.sabt.env.DATABASE_URL,
            `SELECT 1 FROM lookup_codes WHERE sms_state = 'sent' AND code_sealed IS NULL`,
          )
        ).length === 1,
      'the sealed code dropped once sent',
    )
    expect(rows[0]!.code_hash!.includes(Buffer.from(code))).toBe(false)
    // A wrong code: the same answer as any code for the stranger.
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0')
    const w = await lookup(s, { ...asked, code: wrong }, 'lookup/verify')
    const x = await lookup(s, { ...stranger, code }, 'lookup/verify')
    expect(w.statusCode).toBe(422)
    expect(w.json()).toMatchObject({
      code: 'SABT_CODE_INVALID',
      errors: [{ field: 'code', rule: 'one_time_code' }],
    })
    expect(seen(x)).toEqual(seen(w))
    // The right code: the status and the tracking code; then it is used.
    const ok = await lookup(s, { ...asked, code }, 'lookup/verify')
    expect(ok.statusCode).toBe(200)
    const tracking = (
      await sql<{ code: string }>(
        s.sabt.env.DATABASE_URL,
        'SELECT code FROM tracking_codes WHERE registration_id = $1',
        [id],
      )
    )[0]!.code
    expect(ok.json()).toMatchObject({ id, status: 'accepted', tracking_code: showTrackingCode(tracking) })
    expect((await lookup(s, { ...asked, code }, 'lookup/verify')).statusCode).toBe(422)
    // The status API takes the tracking code in place of the id (case, dashes and spaces ignored).
    for (const ref of [showTrackingCode(tracking), tracking.toLowerCase(), id]) {
      const st = await s.sabt.app.inject({ method: 'GET', url: `/v1/campaigns/demo/registrations/${ref}` })
      expect(st.statusCode).toBe(200)
      expect(st.json()).toMatchObject({ id, status: 'accepted', tracking_code: showTrackingCode(tracking) })
    }
    const bad = await s.sabt.app.inject({ method: 'GET', url: '/v1/campaigns/demo/registrations/O0O0O0O0' })
    expect(bad.statusCode).toBe(400)
  })

  it('refuses the sixth code for one national id in a day (registered or not), and past the per-client limit', async () => {
    const s = await system({ env: { SABT_LOOKUP_PER_CLIENT_PER_HOUR: '12' } })
    const { reg } = await register(s)
    const people = [
      { national_id: reg.national_id!, mobile: reg.mobile! },
      { national_id: nationalId(), mobile: '09121234567' },
    ]
    for (const [i, p] of people.entries()) {
      // Each from its own mobile-less angle: a mobile limit does not get in first.
      for (let n = 0; n < 5; n++)
        expect((await lookup(s, p, 'lookup', `198.51.100.${i + 1}`)).statusCode).toBe(202)
      const sixth = await lookup(s, p, 'lookup', `198.51.100.${i + 1}`)
      expect(sixth.statusCode).toBe(429)
      expect(Number(sixth.headers['retry-after'])).toBeGreaterThan(86_000)
      expect(sixth.json()).toMatchObject({
        code: 'SABT_RATE_LIMITED',
        errors: [{ field: 'national_id', rule: 'per_national_id' }],
      })
    }
    // One client address: 12 an hour, whoever it asks for.
    const ip = '203.0.113.9'
    for (let n = 0; n < 12; n++)
      expect(
        (
          await lookup(
            s,
            { national_id: nationalId(), mobile: `0935${String(n).padStart(7, '0')}` },
            'lookup',
            ip,
          )
        ).statusCode,
      ).toBe(202)
    const over = await lookup(s, { national_id: nationalId(), mobile: '09350000099' }, 'lookup', ip)
    expect(over.statusCode).toBe(429)
    expect(over.json()).toMatchObject({ errors: [{ rule: 'per_client' }] })
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(3000)

    // A day later no limit counts the first person's requests: the retention sweep prunes them
    // (and only them: the first five asked), and that person may ask again.
    const url = s.sabt.env.DATABASE_URL
    const total = async () =>
      (await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM lookup_codes'))[0]!.n
    const before = await total()
    await sql(
      url,
      `UPDATE lookup_codes SET created_at = now() - interval '1 day 1 minute', expires_at = now() - interval '1 day'
       WHERE id IN (SELECT id FROM lookup_codes ORDER BY created_at LIMIT 5)`,
    )
    const pool = createPool(url, { max: 2, log: createLogger({ level: 'error' }), name: 'test' })
    try {
      await eraseExpired(pool, s.sabt.config, createLogger({ level: 'error' }))
    } finally {
      await pool.end()
    }
    expect(await total()).toBe(before - 5)
    expect((await lookup(s, people[0]!, 'lookup', '198.51.100.1')).statusCode).toBe(202)
    expect((await lookup(s, people[1]!, 'lookup', '198.51.100.2')).statusCode).toBe(429)
  })

  it('the retention sweep with PostgreSQL unreachable prunes nothing, says so, and prunes on its next run', async () => {
    const s = await system()
    const url = s.sabt.env.DATABASE_URL
    for (let n = 0; n < 3; n++)
      expect(
        (await lookup(s, { national_id: nationalId(), mobile: `0936${String(n).padStart(7, '0')}` }))
          .statusCode,
      ).toBe(202)
    const total = async () =>
      (await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM lookup_codes'))[0]!.n
    const before = await total()
    expect(before).toBeGreaterThanOrEqual(3)
    // Past every limit: a day old and expired.
    await sql(
      url,
      `UPDATE lookup_codes SET created_at = now() - interval '1 day 1 minute', expires_at = now() - interval '1 day'`,
    )
    const proxy = new TcpProxy('127.0.0.1', 5432)
    await proxy.start()
    const viaProxy = new URL(url)
    viaProxy.port = String(proxy.port)
    const { log, lines } = captureLogger()
    const pool = createPool(viaProxy.toString(), { max: 2, log, name: 'test-retention' })
    await proxy.cut()
    const stop = startRetentionSweeper(pool, s.sabt.config, log, 1)
    try {
      await waitFor(
        () => lines.some((l) => JSON.parse(l).event === 'retention.failed'),
        'the sweep to fail and say so',
        15_000,
      )
      expect(await total()).toBe(before) // nothing pruned, nothing half-done
      await proxy.restore()
      await waitFor(async () => (await total()) === 0, 'the next run to prune them', 15_000)
      expect(lines.some((l) => JSON.parse(l).event === 'retention.lookups_pruned')).toBe(true)
    } finally {
      await stop()
      await pool.end().catch(() => {})
      await proxy.close()
    }
  })

  it('locks a lookup after five wrong codes', async () => {
    const s = await system()
    const { reg } = await register(s)
    const asked = { national_id: reg.national_id!, mobile: reg.mobile! }
    expect((await lookup(s, asked)).statusCode).toBe(202)
    const code = codeIn((await waitFor(() => otpFor(s, reg.mobile!)[0], 'the one-time code')).text)
    const wrong = String((Number(code) + 7) % 1_000_000).padStart(6, '0')
    const answers: number[] = []
    for (let n = 0; n < 5; n++)
      answers.push((await lookup(s, { ...asked, code: wrong }, 'lookup/verify')).statusCode)
    expect(answers).toEqual([422, 422, 422, 422, 429])
    const right = await lookup(s, { ...asked, code }, 'lookup/verify')
    expect(right.statusCode).toBe(429)
    expect(right.json()).toMatchObject({
      code: 'SABT_LOOKUP_LOCKED',
      errors: [{ field: 'code', rule: 'wrong_codes' }],
    })
    expect(Number(right.headers['retry-after'])).toBeGreaterThan(0)
  })

  it('a one-time code arrives in under 5 s while 100,000 receipts wait behind a rate-limited provider', async () => {
    const rate = 50
    const s = await system({
      sms: { rate_per_second: rate, concurrency: 8 },
      knobs: { sms: { rate_limit_per_s: rate + 10 } },
    })
    // The backlog: 100,000 registrations written at once (the triggers owe each a receipt).
    const backlog = 100_000
    const env = s.sabt.env
    const sealer = new Sealer(parseDataKeys(env.SABT_DATA_KEYS!, env.SABT_DATA_KEY_ID, env.SABT_INDEX_KEY!))
    const ids: string[] = []
    const cols: { idx: Buffer[]; nid: Buffer[]; mob: Buffer[] } = { idx: [], nid: [], mob: [] }
    for (let i = 0; i < backlog; i++) {
      const id = newUuidV7()
      const sealed = sealPersonal(sealer, id, {
        national_id: nationalId(),
        mobile: `0912${String(i).padStart(7, '0')}`,
      })
      ids.push(id)
      cols.idx.push(sealed.nationalIdIndex)
      cols.nid.push(sealed.nationalIdSealed)
      cols.mob.push(sealed.mobileSealed)
    }
    const c = new pg.Client({ connectionString: env.DATABASE_URL })
    await c.connect()
    await c.query(
      `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id, received_at, status)
       SELECT t.id, 'demo', t.idx, t.nid, t.mob, $5, now(), 'recorded' FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[]) AS t(id, idx, nid, mob)`,
      [ids, cols.idx, cols.nid, cols.mob, sealer.currentKeyId],
    )
    await c.end()
    const { reg } = await register(s)
    // Receipts flowing at the provider's rate, thousands still waiting in the queue.
    await waitFor(() => s.sim.sms.delivered.size >= 2 * rate, 'receipts being sent', 30_000)
    const waiting = (await s.sabt.mq!.queueDepth(s.sabt.mq!.names.smsQueues.receipt))!.messages
    const before = s.sim.sms.delivered.size
    const t0 = Date.now()
    expect((await lookup(s, { national_id: reg.national_id!, mobile: reg.mobile! })).statusCode).toBe(202)
    const otp = await waitFor(() => otpFor(s, reg.mobile!)[0], 'the one-time code', 10_000, 10)
    const ms = otp.at - t0
    const owed = (
      await sql<{ n: number }>(
        env.DATABASE_URL,
        `SELECT count(*)::int AS n FROM citizen_messages WHERE kind = 'receipt' AND state = 'pending'`,
      )
    )[0]!.n
    console.log(
      `otp priority: one-time code delivered ${ms} ms after the request, ${owed} receipts still owed (${waiting} receipt messages queued, ${before} sent before) at ${rate}/s`,
    )
    expect(ms).toBeLessThan(5000)
    expect(owed).toBeGreaterThan(backlog - 2000)
    // Meanwhile receipts go at the provider's rate: measured over 4 s.
    const from = { n: s.sim.sms.delivered.size, t: Date.now() }
    await new Promise((r) => setTimeout(r, 4000))
    const perSecond = ((s.sim.sms.delivered.size - from.n) * 1000) / (Date.now() - from.t)
    console.log(`sms rate while the limit binds: ${perSecond.toFixed(1)}/s of ${rate}/s`)
    expect(perSecond).toBeGreaterThanOrEqual(0.9 * rate)
    expect(perSecond).toBeLessThanOrEqual(rate * 1.1 + 1)
    expect(s.sim.providers.get('sms')!.stats.rate_limited).toBe(0) // the shared rate kept under the provider's
  }, 120_000)
})
