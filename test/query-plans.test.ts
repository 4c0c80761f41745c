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
    const insert = (rows: number) =>
      pool.query(
        `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                                    received_at, status, holds_place, promoted_from)
         SELECT gen_random_uuid(), 'demo', decode(md5(i::text), 'hex'), '\\x00', '\\x00', 'k1', now(),
                CASE WHEN i % 3 = 0 THEN 'rejected' ELSE 'recorded' END, false,
                CASE WHEN i % 7 = 0 THEN gen_random_uuid() END
         FROM generate_series(1, $1::int) AS i`,
        [rows],
      )
    // A campaign's opening minutes: tens of thousands of rows written before autovacuum has
    // analyzed the table once, so the planner has no statistics for its columns at all.
    await pool.query('ALTER TABLE registrations SET (autovacuum_enabled = false)')
    await pool.query('ALTER TABLE registrations DISABLE TRIGGER USER')
    await insert(40_000)
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
    const client = await pool.connect()
    try {
      // PostgreSQL's default would switch this named statement to a generic plan after 5 runs.
      for (let i = 0; i < 8; i++)
        await client.query({
          name: 'sabt_plans_probe',
          text: 'SELECT status FROM registrations WHERE id = $1::uuid',
          values: ['00000000-0000-4000-8000-000000000000'],
        })
      const [probe] = (
        await client.query<{ generic_plans: number; custom_plans: number }>(
          "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'sabt_plans_probe'",
        )
      ).rows
      expect(probe).toEqual({ generic_plans: 0, custom_plans: 8 })
    } finally {
      client.release()
    }
  })
})
