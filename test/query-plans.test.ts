import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PLACES_OF_SETTLED } from '../src/db/places.js'
import { createPool, type Pool } from '../src/db/pool.js'
import { createLogger } from '../src/observability/logger.js'
import { startTestSabt, type TestSabt } from './support/harness.js'

// The checker's hot statements must keep index plans while a campaign's table grows faster than
// its statistics (the opening minutes of a surge). Without statistics each equality is guessed to
// match 0.5 % of the rows: the planner ANDed a bitmap of the whole campaign with the person's, and
// kept generic plans made for the empty table (sequential scans) — 20-60 ms per batch once the
// table held tens of thousands of rows (issue 11, surge profile).
describe('query plans while a table outgrows its statistics', () => {
  let s: TestSabt
  let pool: Pool
  beforeAll(async () => {
    s = await startTestSabt({ roles: ['status'] })
    pool = createPool(s.env.DATABASE_URL, {
      max: 2,
      log: createLogger({ level: 'warn' }),
      name: 'sabt-plans',
    })
    // `people`: how many distinct persons the rows spread over.
    const insert = (from: number, to: number, people: number) =>
      pool.query(
        `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                                    received_at, status, holds_place, promoted_from)
         SELECT gen_random_uuid(), 'demo', decode(md5((i % $3)::text), 'hex'), '\\x00', '\\x00', 'k1', now(),
                CASE WHEN i % 3 = 0 THEN 'rejected' ELSE 'recorded' END, false,
                CASE WHEN i % 7 = 0 THEN ('00000000-0000-4000-8000-' || lpad((i % $3)::text, 12, '0'))::uuid END
         FROM generate_series($1::int, $2::int) AS i`,
        [from, to, people],
      )
    // A campaign's opening minutes: tens of thousands of rows written before autovacuum has
    // analyzed the table once, so the planner has no statistics for its columns at all.
    await pool.query('ALTER TABLE registrations SET (autovacuum_enabled = false)')
    await pool.query('ALTER TABLE registrations DISABLE TRIGGER USER')
    await insert(1, 40_000, 1_000_000)
  }, 60_000)
  afterAll(async () => {
    await pool?.end()
    await s?.cleanup()
  })

  it('settling places probes one two-column index per person, never a bitmap of the whole campaign', async () => {
    const ids = (
      await pool.query<{ id: string }>(
        "SELECT id::text FROM registrations WHERE status = 'rejected' ORDER BY received_at DESC LIMIT 50",
      )
    ).rows.map((r) => r.id)
    const [row] = (
      await pool.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) ${PLACES_OF_SETTLED}`, [ids])
    ).rows
    const plan = JSON.stringify(row!['QUERY PLAN'])
    expect(plan).not.toContain('BitmapAnd')
    expect(plan).not.toContain('registrations_campaign_status')
    expect(plan).not.toContain('registrations_campaign_open')
    expect(plan).toContain('registrations_person')
    expect(plan).toContain('registrations_promoted_from')
  })

  it("Sabt's connections plan every run of a prepared statement afresh (no generic plan kept from an empty table)", async () => {
    const [{ plan_cache_mode }] = (await pool.query<{ plan_cache_mode: string }>('SHOW plan_cache_mode'))
      .rows as [{ plan_cache_mode: string }]
    expect(plan_cache_mode).toBe('force_custom_plan')
  })
})
