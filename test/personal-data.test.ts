import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import amqp from 'amqplib'
import { afterEach, describe, expect, it } from 'vitest'
import { loadEnv } from '../src/config/env.js'
import { eraseCampaign, findByNationalIdIndex, resealAll } from '../src/db/personal-data.js'
import { newKey, parseDataKeys, Sealer } from '../src/privacy/sealing.js'
import { expectedVerdict } from '../src/roles/simulator/answers.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { AMQP_URL, registration, sql, startTestSabt, testEnv, waitFor } from './support/harness.js'

const run = promisify(execFile)

describe('personal data at rest', () => {
  const systems: ChecksSystem[] = []
  afterEach(async () => {
    for (const s of systems.splice(0)) await s.cleanup()
  })

  async function submitAndSettle(s: ChecksSystem, regs: Record<string, unknown>[]): Promise<string[]> {
    const ids: string[] = []
    for (const r of regs)
      ids.push(
        (await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: r })).json<{
          id: string
        }>().id,
      )
    await waitFor(async () => {
      const rows = await sql<{ n: number }>(
        s.sabt.env.DATABASE_URL,
        `SELECT count(*)::int AS n FROM (SELECT id FROM registrations WHERE status IN ('accepted', 'rejected') AND id = ANY($1)
         UNION ALL SELECT id FROM duplicates WHERE id = ANY($1)) x`,
        [ids],
      )
      return rows[0]!.n === ids.length
    }, 'every registration settled')
    return ids
  }

  it('a database dump holds no clear national id or mobile, and the duplicate rule and lookup still work', async () => {
    const s = await startChecksSystem({ checks: { identity: { cache_ttl_s: 3600 } } })
    systems.push(s)
    const regs = Array.from({ length: 10 }, () => registration())
    // The first is one the simulated providers accept: a later submission of the same person then
    // ends a duplicate of it (had it been rejected, the later one would have taken its place).
    while (expectedVerdict(regs[0] as never) !== 'accepted') regs[0] = registration()
    const dup: Record<string, unknown> = { ...regs[0]!, mobile: '09301234567' }
    const ids = await submitAndSettle(s, [...regs, dup])

    const { stdout } = await run('pg_dump', ['--data-only', '--no-owner', s.sabt.env.DATABASE_URL], {
      maxBuffer: 64 * 1024 * 1024,
    })
    expect(stdout).toContain(ids[0]) // the dump is of the right database
    for (const r of [...regs, dup]) {
      const nid = r.national_id as string
      const mobile = r.mobile as string
      for (const needle of [
        nid,
        mobile,
        mobile.slice(1),
        Buffer.from(nid).toString('hex'),
        Buffer.from(mobile).toString('hex'),
      ])
        expect(stdout.includes(needle), `dump contains ${needle.slice(0, 3)}…`).toBe(false)
    }

    // The duplicate rule ran on the blind index: the second submission points at the first.
    const d = await sql<{ original_id: string }>(
      s.sabt.env.DATABASE_URL,
      'SELECT original_id::text FROM duplicates WHERE id = $1',
      [ids[10]],
    )
    expect(d).toEqual([{ original_id: ids[0] }])
    // And a person can be found by national id, through the same keyed index.
    const sealer = new Sealer(
      parseDataKeys(s.sabt.env.SABT_DATA_KEYS!, undefined, s.sabt.env.SABT_INDEX_KEY!),
    )
    const found = await findByNationalIdIndex(s.sabt.pool!, sealer.blindIndex(regs[3]!.national_id as string))
    expect(found.map((f) => f.id)).toEqual([ids[3]])
  })

  it('with SABT_SEAL_AT=gateway the intake queue holds no clear national id or mobile: the gateway seals them before publishing', async () => {
    const env = testEnv({ SABT_SEAL_AT: 'gateway' })
    // The gateway alone: what it published waits in the intake queue, readable.
    const gateway = await startTestSabt({ roles: ['gateway'], env })
    try {
      const regs = Array.from({ length: 5 }, () => registration())
      for (const r of regs) {
        const res = await gateway.app.inject({ method: 'POST', url: '/v1/registrations', payload: r })
        expect(res.statusCode).toBe(202)
      }
      const conn = await amqp.connect(AMQP_URL)
      const bodies: string[] = []
      try {
        const ch = await conn.createChannel()
        for (;;) {
          const m = await ch.get(gateway.mq!.names.intakeQueues[0]!, { noAck: false })
          if (!m) break
          bodies.push(m.content.toString())
        }
        await ch.close() // unacked: back in the queue for the recorder
      } finally {
        await conn.close()
      }
      expect(bodies).toHaveLength(5)
      for (const [i, r] of regs.entries()) {
        for (const needle of [r.national_id as string, r.mobile as string, (r.mobile as string).slice(1)])
          for (const b of bodies)
            expect(b.includes(needle), `message holds ${needle.slice(0, 3)}…`).toBe(false)
        const message = JSON.parse(bodies[i]!)
        expect(message).toMatchObject({ v: 3, records: [{ first_name: r.first_name }] })
        expect(Object.keys(message.records[0])).toEqual(
          expect.arrayContaining(['key_id', 'national_id_index', 'national_id_sealed', 'mobile_sealed']),
        )
      }

      // A recorder stores them, and they open to what was submitted.
      const recorder = await startTestSabt({ roles: ['recorder'], env })
      try {
        await waitFor(
          async () =>
            (await sql<{ n: number }>(env.DATABASE_URL, 'SELECT count(*)::int AS n FROM registrations'))[0]!
              .n === 5,
          'recorded',
        )
        const sealer = new Sealer(parseDataKeys(env.SABT_DATA_KEYS!, undefined, env.SABT_INDEX_KEY!))
        for (const r of regs) {
          const [row] = await findByNationalIdIndex(
            recorder.pool!,
            sealer.blindIndex(r.national_id as string),
          )
          expect(row).toBeDefined()
        }
        const rows = await sql<{ id: string; mob: Buffer; key_id: string }>(
          env.DATABASE_URL,
          'SELECT id::text, mobile_sealed AS mob, key_id FROM registrations',
        )
        expect(new Set(rows.map((x) => sealer.open(x.mob, x.key_id, `${x.id}:mobile`)))).toEqual(
          new Set(regs.map((r) => r.mobile)),
        )
      } finally {
        await recorder.cleanup()
      }
    } finally {
      await gateway.cleanup()
    }
  })

  it('re-seals every record under a new key, after which the old key is not needed', async () => {
    const s = await startChecksSystem({})
    systems.push(s)
    const regs = Array.from({ length: 12 }, () => registration())
    await submitAndSettle(s, regs)
    const env = s.sabt.env
    const rotated = loadEnv({
      ...(env as unknown as Record<string, string>),
      SABT_DATA_KEYS: `${env.SABT_DATA_KEYS},k2:${newKey()}`,
      SABT_DATA_KEY_ID: 'k2',
    })
    const both = new Sealer(parseDataKeys(rotated.SABT_DATA_KEYS!, 'k2', rotated.SABT_INDEX_KEY!))
    expect(await resealAll(s.sabt.pool!, both, { batch: 5 })).toBe(12)
    expect(await resealAll(s.sabt.pool!, both, { batch: 5 })).toBe(0) // idempotent

    const onlyNew = new Sealer(
      parseDataKeys(rotated.SABT_DATA_KEYS!.split(',')[1]!, 'k2', rotated.SABT_INDEX_KEY!),
    )
    const rows = await sql<{ id: string; national_id_sealed: Buffer; key_id: string }>(
      env.DATABASE_URL,
      'SELECT id::text, national_id_sealed, key_id FROM registrations',
    )
    const opened = rows.map((r) => onlyNew.open(r.national_id_sealed, r.key_id, `${r.id}:national_id`)).sort()
    expect(opened).toEqual(regs.map((r) => r.national_id as string).sort())
    expect(new Set(rows.map((r) => r.key_id))).toEqual(new Set(['k2']))
  })

  it('erases a campaign past its retention, keeping only the counts', async () => {
    const s = await startChecksSystem({
      campaigns: {
        demo: { title: 'Demo', checks: ['identity'], retention_days: 30 },
        other: { title: 'Other', checks: ['identity'] },
      },
    })
    systems.push(s)
    const regs = Array.from({ length: 6 }, () => registration())
    const ids = await submitAndSettle(s, regs)
    const [keep] = await submitAndSettle(s, [registration({ campaign: 'other' })])
    const before = await sql<{ status: string; n: number }>(
      s.sabt.env.DATABASE_URL,
      "SELECT status, count(*)::int AS n FROM registrations WHERE campaign = 'demo' GROUP BY 1 ORDER BY 1",
    )

    // Nothing has expired yet.
    expect(await eraseCampaign(s.sabt.pool!, 'demo', { retentionDays: 30 })).toBe(0)
    // Age them past the retention period, then sweep.
    await sql(
      s.sabt.env.DATABASE_URL,
      "UPDATE registrations SET recorded_at = now() - interval '31 days' WHERE campaign = 'demo'",
    )
    expect(await eraseCampaign(s.sabt.pool!, 'demo', { retentionDays: 30, batch: 4 })).toBe(6)

    const erased = await sql<Record<string, unknown>>(
      s.sabt.env.DATABASE_URL,
      'SELECT national_id_index, national_id_sealed, mobile_sealed, first_name, last_name, birth_date, attributes, erased_at FROM registrations WHERE id = ANY($1)',
      [ids],
    )
    for (const row of erased) {
      expect(row.erased_at).not.toBeNull()
      expect({ ...row, erased_at: null }).toEqual({
        national_id_index: null,
        national_id_sealed: null,
        mobile_sealed: null,
        first_name: null,
        last_name: null,
        birth_date: null,
        attributes: null,
        erased_at: null,
      })
    }
    const after = await sql<{ status: string; n: number }>(
      s.sabt.env.DATABASE_URL,
      "SELECT status, count(*)::int AS n FROM registrations WHERE campaign = 'demo' GROUP BY 1 ORDER BY 1",
    )
    expect(after).toEqual(before) // the counts stay
    const other = await sql<{ first_name: string | null }>(
      s.sabt.env.DATABASE_URL,
      'SELECT first_name FROM registrations WHERE id = $1',
      [keep],
    )
    expect(other[0]!.first_name).not.toBeNull() // another campaign is untouched
    const st = await s.sabt.app.inject({ method: 'GET', url: `/v1/registrations/${ids[0]}` })
    expect(st.statusCode).toBe(200) // and its status is still answered
  })
})
