import { randomBytes } from 'node:crypto'
import { buildConfig } from '../../src/config/campaigns.js'
import { allocationOf, commitDraw, drawLottery, findDraw, loadResults } from '../../src/db/draws.js'
import { rankIds, verifyResults } from '../../src/domain/draw.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/context.js'
import { withFreshDatabase } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'

/**
 * The lottery draw (issue 13, decision 019): N accepted registrations (1,000,000; smoke-size with
 * SABT_BENCH_DRAW_N or --quick) written straight into a fresh database, then `drawLottery` — read
 * the ids, HMAC-SHA256 each, sort, write every rank, reveal, in one transaction. Floors in the same
 * run: a bare INSERT … SELECT of N rows into a table shaped like `allocations` (same indexes), and
 * a bare HMAC + sort of the N ids in Node. Also timed: verifying the exported results.
 */
export const draw: Scenario = {
  name: 'draw',
  title: 'Lottery draw (sabt draw run over N accepted registrations)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const n = Number(process.env.SABT_BENCH_DRAW_N ?? (ctx.quick ? 100_000 : 1_000_000))
    const capacity = Math.max(1, Math.round(n / 50))
    const config = buildConfig({
      campaigns: {
        draw: {
          title: 'Bench draw',
          capacity,
          allocation: 'lottery',
          opens_at: '2026-01-01T00:00:00Z',
          closes_at: '2026-01-02T00:00:00Z',
          draw_at: '2026-01-02T00:01:00Z',
        },
      },
    })
    const campaign = config.campaigns.get('draw')!
    const runs: {
      run: number
      insert_s: number
      floor_insert_s: number
      floor_hmac_sort_s: number
      draw_s: number
      export_s: number
      verify_s: number
      winners: number
      position_ms: number
      baseline_position_ms: number
      idle: unknown
    }[] = []
    for (let run = 1; run <= (ctx.quick ? 1 : ctx.runs); run++) {
      await withFreshDatabase('draw', async (pool) => {
        const secs = async (f: () => Promise<unknown>) => {
          const t = performance.now()
          await f()
          return (performance.now() - t) / 1000
        }
        const insert_s = await secs(() =>
          pool.query(
            `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                                        received_at, status, verdict_at)
             SELECT gen_random_uuid(), 'draw', decode(md5(i::text), 'hex'), '\\x00', '\\x00', 'k1',
                    now() - make_interval(secs => i / 1000.0), 'accepted', now()
             FROM generate_series(1, $1) AS i`,
            [n],
          ),
        )
        await pool.query('VACUUM ANALYZE registrations')
        ctx.log(
          `  run ${run}: ${n.toLocaleString('en-US')} accepted registrations written in ${insert_s.toFixed(1)} s`,
        )
        const idle = await ctx.idle()
        // Floor 1: the write alone — N rows into a copy of allocations (same indexes), in one statement.
        await pool.query('CREATE TABLE floor_allocations (LIKE allocations INCLUDING ALL)')
        const floor_insert_s = await secs(() =>
          pool.query(
            `INSERT INTO floor_allocations (registration_id, campaign, rank, won)
             SELECT id, campaign, row_number() OVER (), false FROM registrations WHERE campaign = 'draw'`,
          ),
        )
        // Floor 2: the computation alone — HMAC-SHA256 of every id and the sort, in Node.
        const ids = (
          await pool.query<string[]>({ text: 'SELECT id::text FROM registrations', rowMode: 'array' })
        ).rows.map((r) => r[0]!)
        const floor_hmac_sort_s = await secs(async () => rankIds(randomBytes(32), ids))
        await commitDraw(pool, 'draw', 'bench')
        let winners = 0
        const draw_s = await secs(async () => {
          const s = await drawLottery(pool, campaign, 'bench', { now: campaign.scarce!.drawAt! + 1 })
          winners = s.winners
        })
        let results: Awaited<ReturnType<typeof loadResults>> = null
        const export_s = await secs(async () => {
          results = await loadResults(pool, 'draw')
        })
        let problems: string[] = []
        const verify_s = await secs(async () => {
          problems = verifyResults(results)
        })
        if (problems.length > 0 || !(await findDraw(pool, 'draw'))?.drawn_at)
          throw new Error(`the draw did not verify: ${problems.slice(0, 3).join('; ')}`)
        // A status poll of one late on the waiting list, against the position counted afresh over
        // every waiting entry ranked before it (as before migration 0019), checked equal.
        const late = (
          await pool.query<{ id: string }>(
            `SELECT registration_id::text AS id FROM allocations WHERE campaign = 'draw' ORDER BY rank DESC LIMIT 1 OFFSET 10`,
          )
        ).rows[0]!.id
        const lateRecord = { id: late, status: 'accepted' }
        const place = await allocationOf(pool, campaign, lateRecord)
        const baseline = () =>
          pool.query<{ position: number }>(
            `SELECT (SELECT count(*)::int FROM allocations w WHERE w.campaign = a.campaign AND w.rank <= a.rank
                       AND NOT w.won AND w.promoted_at IS NULL) AS position
             FROM allocations a WHERE a.registration_id = $1`,
            [late],
          )
        const expected = (await baseline()).rows[0]!.position
        if (place?.state !== 'waitlisted' || place.position !== expected)
          throw new Error(`position ${JSON.stringify(place)} ≠ the baseline's ${expected}`)
        const median5 = async (f: () => Promise<unknown>) => {
          const t: number[] = []
          for (let i = 0; i < 5; i++) t.push((await secs(f)) * 1000)
          return t.sort((a, b) => a - b)[2]!
        }
        const position_ms = await median5(() => allocationOf(pool, campaign, lateRecord))
        const baseline_position_ms = await median5(baseline)
        ctx.log(
          `  run ${run}: draw ${draw_s.toFixed(1)} s (floors: insert ${floor_insert_s.toFixed(1)} s, HMAC + sort ${floor_hmac_sort_s.toFixed(1)} s); export ${export_s.toFixed(1)} s, verify ${verify_s.toFixed(1)} s`,
        )
        runs.push({
          run,
          insert_s,
          floor_insert_s,
          floor_hmac_sort_s,
          draw_s,
          export_s,
          verify_s,
          winners,
          position_ms,
          baseline_position_ms,
          idle,
        })
      })
    }
    const draw = over(runs, (r) => r.draw_s)
    const floor = over(runs, (r) => r.floor_insert_s + r.floor_hmac_sort_s)
    const markdown = `| accepted registrations | winners | draw (s) | floor: bare INSERT … SELECT of N ranks (s) | floor: bare HMAC + sort in Node (s) | draw ÷ sum of floors | export (s) | verify (s) |
|---:|---:|---:|---:|---:|---:|---:|---:|
| ${n.toLocaleString('en-US')} | ${capacity.toLocaleString('en-US')} | ${fmt(draw)} | ${fmt(over(runs, (r) => r.floor_insert_s))} | ${fmt(over(runs, (r) => r.floor_hmac_sort_s))} | ${(draw.median / floor.median).toFixed(2)}× | ${fmt(over(runs, (r) => r.export_s))} | ${fmt(over(runs, (r) => r.verify_s))} |

A status poll of one late on the waiting list (its position): ${fmt(over(runs, (r) => r.position_ms))} ms, against ${fmt(
      over(runs, (r) => r.baseline_position_ms),
      0,
    )} ms for the position counted afresh over every entry ranked before it (as before migration 0019; the same answer, checked).

The draw is one transaction: read the N ids, HMAC-SHA256 each and sort (Node), write every rank
(INSERT … SELECT FROM unnest, 50,000 a statement, into a table with its primary key and a unique
(campaign, rank) index), reveal the seed. The floors are its two halves done bare. Export: the
results document built from the database; verify: recompute every rank from the seed and the ids.
`
    return {
      name: 'draw',
      title: this.title,
      markdown,
      data: { n, capacity, runs },
      headline: { draw_s: draw.median, n },
    }
  },
}
