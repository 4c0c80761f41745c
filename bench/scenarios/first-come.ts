import { buildConfig } from '../../src/config/campaigns.js'
import { allocationOf, FINALITY_BATCH, firstComeFrontier, markFirstComeFinal } from '../../src/db/draws.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/context.js'
import { withFreshDatabase } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'

/**
 * A first_come campaign in the middle of its surge (decision 023): N registrations (1,000,000;
 * 100,000 with --quick) written straight into a fresh database, 70 % accepted and the latest 30 %
 * still being checked, one in ten with a duplicate. Timed, each the median of 5 within a run:
 * - the finality sweep's frontier (one after a checker start, without the last frontier; and the
 *   steady one, from it), and a sweep numbering 5,000 records the checks just accepted;
 * - one record's place, as a callback or an allocation message asks for it (late in the order);
 * - the first sweep numbering every place already final (a campaign upgraded mid-way), once.
 * The baselines, in the same run and database: the same answers counted afresh over the campaign's
 * records, as Sabt did before migration 0019 (the queries of feb780c, kept here verbatim).
 */
const OPEN = "('recorded', 'verifying', 'failed')"
const BASELINE_FRONTIER = `SELECT LEAST(
     (SELECT settled_before FROM intake_watermark),
     (SELECT min(LEAST(r.received_at, (SELECT min(d.received_at) FROM duplicates d WHERE d.original_id = r.id)))
      FROM registrations r WHERE r.campaign = $1 AND r.status IN ${OPEN}),
     (SELECT min(received_at) FROM waiting WHERE campaign = $1)) AS frontier`
const BASELINE_PLACE = `WITH me AS (
       SELECT r.id, LEAST(r.received_at, (SELECT min(d.received_at) FROM duplicates d WHERE d.original_id = r.id)) AS at
       FROM registrations r WHERE r.id = $2 AND r.campaign = $1
     ), cand AS (
       SELECT d.original_id AS id FROM duplicates d, me WHERE d.campaign = $1 AND d.received_at <= me.at
       UNION
       SELECT r.id FROM registrations r, me WHERE r.campaign = $1 AND r.status = 'accepted' AND r.received_at = me.at
     ), keyed AS (
       SELECT r.id, LEAST(r.received_at, (SELECT min(d.received_at) FROM duplicates d WHERE d.original_id = r.id)) AS at
       FROM cand JOIN registrations r ON r.id = cand.id, me
       WHERE r.status = 'accepted' AND r.received_at >= me.at AND r.id <> me.id
     ), gone AS (SELECT released_id AS id FROM releases WHERE campaign = $1)
     SELECT ((SELECT count(*) FROM registrations r, me
              WHERE r.campaign = $1 AND r.status = 'accepted' AND r.received_at < me.at
                AND NOT EXISTS (SELECT 1 FROM gone WHERE gone.id = r.id))
             + (SELECT count(*) FROM keyed k, me WHERE (k.at, k.id) < (me.at, me.id)
                AND NOT EXISTS (SELECT 1 FROM gone WHERE gone.id = k.id)))::int AS ahead,
            EXISTS (SELECT 1 FROM gone WHERE id = $2) AS released,
            ((SELECT count(*) FROM registrations r, me WHERE r.campaign = $1 AND r.status IN ${OPEN}
                AND LEAST(r.received_at, (SELECT min(d.received_at) FROM duplicates d WHERE d.original_id = r.id)) < me.at)
             + (SELECT count(*) FROM waiting w, me WHERE w.campaign = $1 AND w.received_at < me.at))::int AS unsettled`

interface Run {
  run: number
  insert_s: number
  first_numbering_s: number
  numbered: number
  frontier_cold_ms: number
  frontier_ms: number
  baseline_frontier_ms: number
  sweep_5000_ms: number
  place_ms: number
  baseline_place_ms: number
  idle: unknown
}

const ms = async (f: () => Promise<unknown>): Promise<number> => {
  const t = performance.now()
  await f()
  return performance.now() - t
}
/** The median of `k` timings of `f`. */
async function median(k: number, f: () => Promise<unknown>): Promise<number> {
  const t: number[] = []
  for (let i = 0; i < k; i++) t.push(await ms(f))
  return t.sort((a, b) => a - b)[k >> 1]!
}

export const firstCome: Scenario = {
  name: 'first-come',
  title: 'first_come at a million: finality sweep and a place, against counting afresh',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const n = Number(process.env.SABT_BENCH_FIRST_COME_N ?? (ctx.quick ? 100_000 : 1_000_000))
    const accepted = Math.round(n * 0.7)
    const capacity = Math.max(1, Math.round(n / 50))
    const config = buildConfig({
      campaigns: { fc: { title: 'Bench first come', capacity, allocation: 'first_come' } },
    })
    const campaign = config.campaigns.get('fc')!
    const runs: Run[] = []
    for (let run = 1; run <= (ctx.quick ? 1 : ctx.runs); run++) {
      await withFreshDatabase('fc', async (pool) => {
        await pool.query(`INSERT INTO campaigns (slug, title) VALUES ('fc', 'Bench first come')`)
        const insert_s =
          (await ms(async () => {
            await pool.query(
              `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                                          received_at, status, verdict_at)
               SELECT gen_random_uuid(), 'fc', decode(md5(i::text), 'hex'), '\\x00', '\\x00', 'k1',
                      '2026-01-01T10:00:00Z'::timestamptz + make_interval(secs => i / 1000.0),
                      CASE WHEN i <= $2 THEN 'accepted' ELSE 'recorded' END,
                      CASE WHEN i <= $2 THEN now() END
               FROM generate_series(1, $1) AS i`,
              [n, accepted],
            )
            await pool.query(
              `INSERT INTO duplicates (id, original_id, campaign, received_at)
               SELECT gen_random_uuid(), id, campaign, received_at + interval '1 s'
               FROM registrations WHERE campaign = 'fc' AND get_byte(national_id_index, 0) < 26`,
            )
            await pool.query('VACUUM ANALYZE registrations')
            await pool.query('VACUUM ANALYZE duplicates')
          })) / 1000
        ctx.log(
          `  run ${run}: ${n.toLocaleString('en-US')} registrations written in ${insert_s.toFixed(1)} s`,
        )
        const idle = await ctx.idle()
        // What a sweep does, in the sweeper's batches: every place final below the frontier numbered.
        const sweep = async (since: Date | null) => {
          const frontier = (await firstComeFrontier(pool, 'fc', since))!
          return { frontier, numbered: (await markFirstComeFinal(pool, campaign, frontier)).length }
        }
        let first = { frontier: new Date(0), numbered: 0 }
        const first_numbering_s =
          (await ms(async () => {
            first = await sweep(null)
          })) / 1000
        if (first.numbered !== accepted)
          throw new Error(`the first sweep numbered ${first.numbered} places, not ${accepted}`)
        const frontier_cold_ms = await median(5, () => firstComeFrontier(pool, 'fc'))
        const frontier_ms = await median(5, () => firstComeFrontier(pool, 'fc', first.frontier))
        const baseline_frontier_ms = await median(5, () => pool.query(BASELINE_FRONTIER, ['fc']))
        const f = await firstComeFrontier(pool, 'fc')
        if (f?.getTime() !== first.frontier.getTime())
          throw new Error('the frontier moved without anything settling')
        const [{ frontier: b } = { frontier: null }] = (
          await pool.query<{ frontier: Date | null }>(BASELINE_FRONTIER, ['fc'])
        ).rows
        if (b?.getTime() !== f.getTime()) throw new Error(`frontier ${f.toISOString()} ≠ the baseline's ${b}`)
        // The checks catch up with 5,000 more: the next sweep numbers them.
        await pool.query(
          `UPDATE registrations SET status = 'accepted', verdict_at = now() WHERE id IN (
             SELECT id FROM registrations WHERE campaign = 'fc' AND status = 'recorded' ORDER BY received_at LIMIT 5000)`,
        )
        let next = { frontier: new Date(0), numbered: 0 }
        const sweep_5000_ms = await ms(async () => {
          next = await sweep(first.frontier)
        })
        if (next.numbered !== 5000) throw new Error(`the sweep numbered ${next.numbered}, not 5,000`)
        // A place late in the order (a callback, an allocation message, a lookup).
        const late = (
          await pool.query<{ id: string }>(
            `SELECT id::text FROM registrations WHERE campaign = 'fc' AND place_rank IS NOT NULL
             ORDER BY place_rank DESC LIMIT 1 OFFSET 10`,
          )
        ).rows[0]!.id
        const place = await allocationOf(pool, campaign, { id: late, status: 'accepted' })
        const base = (await pool.query<{ ahead: number }>(BASELINE_PLACE, ['fc', late])).rows[0]!
        if (place?.state !== 'waitlisted' || place.position !== base.ahead + 1 - capacity)
          throw new Error(`place ${JSON.stringify(place)} ≠ the baseline's rank ${base.ahead + 1}`)
        const place_ms = await median(5, () => allocationOf(pool, campaign, { id: late, status: 'accepted' }))
        const baseline_place_ms = await median(5, () => pool.query(BASELINE_PLACE, ['fc', late]))
        const r: Run = {
          run,
          insert_s,
          first_numbering_s,
          numbered: first.numbered,
          frontier_cold_ms,
          frontier_ms,
          baseline_frontier_ms,
          sweep_5000_ms,
          place_ms,
          baseline_place_ms,
          idle,
        }
        runs.push(r)
        ctx.log(
          `  run ${run}: frontier ${frontier_ms.toFixed(1)} ms (after a start ${frontier_cold_ms.toFixed(0)}, counted afresh ${baseline_frontier_ms.toFixed(0)}); sweep of 5,000 ${sweep_5000_ms.toFixed(0)} ms; a place ${place_ms.toFixed(1)} ms (counted afresh ${baseline_place_ms.toFixed(0)}); first numbering of ${first.numbered.toLocaleString('en-US')} ${first_numbering_s.toFixed(1)} s`,
        )
      })
    }
    const s = (f: (r: Run) => number, d = 1) => fmt(over(runs, f), d)
    const ratio = (a: (r: Run) => number, b: (r: Run) => number) =>
      `${(over(runs, b).median / over(runs, a).median).toFixed(0)}×`
    const open = n - accepted
    const markdown = `${n.toLocaleString('en-US')} registrations of one first_come campaign (${capacity.toLocaleString('en-US')} places): ${accepted.toLocaleString('en-US')} accepted, the latest ${open.toLocaleString('en-US')} still being checked, one in ten with a duplicate. Each figure the median of 5 within a run, then of the runs.

| what | now (ms) | counted afresh, as before migration 0019 (ms) | faster |
|---|---:|---:|---:|
| the finality sweep's frontier (each sweep, from the last one) | ${s((r) => r.frontier_ms)} | ${s((r) => r.baseline_frontier_ms, 0)} | ${ratio(
      (r) => r.frontier_ms,
      (r) => r.baseline_frontier_ms,
    )} |
| the frontier after a checker starts (no last frontier) | ${s((r) => r.frontier_cold_ms)} | ${s((r) => r.baseline_frontier_ms, 0)} | ${ratio(
      (r) => r.frontier_cold_ms,
      (r) => r.baseline_frontier_ms,
    )} |
| one record's place, late in the order (a status poll, a callback, an allocation message) | ${s((r) => r.place_ms)} | ${s((r) => r.baseline_place_ms, 0)} | ${ratio(
      (r) => r.place_ms,
      (r) => r.baseline_place_ms,
    )} |
| a sweep numbering 5,000 records just accepted | ${s((r) => r.sweep_5000_ms, 0)} | — | — |

Once, for a campaign upgraded mid-way: the first sweep numbered the ${accepted.toLocaleString('en-US')} places already final in ${s((r) => r.first_numbering_s)} s (${FINALITY_BATCH.toLocaleString('en-US')} a transaction). Each answer was checked against the baseline's (the same frontier, the same rank).
`
    return {
      name: 'first-come',
      title: this.title,
      markdown,
      data: { n, accepted, capacity, runs },
      headline: {
        n,
        frontier_ms: over(runs, (r) => r.frontier_ms).median,
        place_ms: over(runs, (r) => r.place_ms).median,
        baseline_place_ms: over(runs, (r) => r.baseline_place_ms).median,
      },
    }
  },
}
