import { join } from 'node:path'
import { v7 as uuidv7 } from 'uuid'
import { parseDataKeys, Sealer } from '../../src/privacy/sealing.js'
import { intakeBody, intakeMessage } from '../lib/bodies.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/context.js'
import { skipped } from '../lib/context.js'
import { checksAvailable, pipelineCpu, roleBackends, startSimulator } from '../lib/pipeline.js'
import { ROOT } from '../lib/procs.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'
import { cpuPct, cpuSeconds, measure } from '../lib/system.js'

/**
 * Checks (issue 3's `npm run bench:checks`): N recorded registrations wait with their check
 * messages queued; the checker starts against the provider simulator at a fixed latency. Reports
 * checks completed per second and the share of the providers' combined rate limit
 * (Σ rate_per_second of the campaign's checks in config/sabt.yaml) actually used. Measured at
 * 50 ms (issue 3) and at 20 ms (the seed's mock latency, for the ratio to the seed).
 */
export const checks: Scenario = {
  name: 'checks',
  title: 'Checks (checker against the provider simulator)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const avail = checksAvailable()
    if (!avail.ok) return skipped('checks', this.title, avail.why)
    const n = Number(process.env.SABT_BENCH_CHECKS_N ?? (ctx.quick ? 1000 : 20_000))
    const latencies = ctx.quick ? [50] : [50, 20]
    const rows: {
      latency: number
      run: number
      checks: number
      seconds: number
      per_s: number
      quota: number
      cpu: Record<string, number>
      per_check: Record<string, { checks: number; per_s: number; limit: number; share: number }>
    }[] = []
    for (const latency of latencies)
      for (let run = 1; run <= (ctx.quick ? 1 : ctx.runs); run++) {
        // At 20 ms the providers' limits are lifted (bench/config/capacity.yaml): the checker's own
        // capacity, for the ratio to the seed. At 50 ms the shipped limits: how much of them is used.
        const sabt = await BenchSabt.create(
          'checks',
          latency === 20 ? { SABT_CONFIG: join(ROOT, 'bench', 'config', 'capacity.yaml') } : {},
        )
        try {
          const sealer = new Sealer(
            parseDataKeys(sabt.env.SABT_DATA_KEYS!, undefined, sabt.env.SABT_INDEX_KEY!),
          )
          const campaign = sabt.config.campaigns.get('demo')!
          const quota = campaign.checks.reduce(
            (a, c) => a + (sabt.config.checks.get(c.name)?.rate_per_second ?? 0),
            0,
          )
          // Registrations recorded (with their first check messages queued) by the recorder itself.
          const msgs = Array.from({ length: n }, (_, i) => {
            const id = uuidv7()
            const m = intakeMessage(id, 'demo', 140_000_000 + run * 1_000_000 + i)
            return {
              id,
              campaign: 'demo',
              nationalId: m.national_id as string,
              body: intakeBody(sealer, m),
            }
          })
          await sabt.fillIntake(msgs)
          const rec = await sabt.start('recorder', { name: 'checks-recorder' })
          for (;;) {
            const [{ c }] = (await sabt.sql<{ c: number }>(
              'SELECT count(*)::int AS c FROM registrations',
            )) as [{ c: number }]
            if (c >= n) break
            await new Promise((r) => setTimeout(r, 300))
          }
          const simulator = await startSimulator(sabt, latency)
          await ctx.idle()
          const t0 = Date.now()
          let pg: number[] = []
          let checker: Awaited<ReturnType<typeof sabt.start>> | null = null
          const m = await measure(
            {
              ...pipelineCpu(sabt, { recorder: rec, simulator }, () => pg),
              checker: () => (checker ? cpuSeconds(checker.pid) : 0),
            },
            async () => {
              checker = await sabt.start('checker', { name: 'checks-checker' })
              for (;;) {
                pg = await roleBackends(sabt)
                const [{ c }] = (await sabt.sql<{ c: number }>(
                  "SELECT count(*)::int AS c FROM registrations WHERE status IN ('accepted', 'rejected', 'failed')",
                )) as [{ c: number }]
                if (c >= n) break
                if (Date.now() - t0 > 20 * 60_000)
                  throw new Error(`checks: ${c} of ${n} verdicts after 20 min`)
                await new Promise((r) => setTimeout(r, 500))
              }
            },
          )
          void checker
          // Per check: calls answered / the span they took, against that check's rate limit.
          const per = await sabt.sql<{ check: string; c: number; span: number }>(
            `SELECT check_name AS check, count(*)::int AS c,
                    extract(epoch FROM max(finished_at) - min(finished_at))::float8 AS span
             FROM check_results WHERE outcome IS NOT NULL AND finished_at IS NOT NULL GROUP BY check_name`,
          )
          const [all] = await sabt.sql<{ c: number; span: number }>(
            'SELECT count(*)::int AS c, extract(epoch FROM max(finished_at) - min(finished_at))::float8 AS span FROM check_results WHERE outcome IS NOT NULL',
          )
          const perCheck = Object.fromEntries(
            per.map((p) => {
              const rate = p.c / Math.max(0.001, p.span)
              const limit = sabt.config.checks.get(p.check)?.rate_per_second ?? Number.NaN
              return [p.check, { checks: p.c, per_s: Math.round(rate), limit, share: rate / limit }]
            }),
          )
          const used = Object.values(perCheck).reduce((a, x) => a + x.per_s, 0)
          const perS = all!.c / Math.max(0.001, all!.span)
          rows.push({
            latency,
            run,
            checks: all!.c,
            seconds: all!.span,
            per_s: Math.round(perS),
            quota: used / quota,
            cpu: cpuPct(m),
            per_check: perCheck,
          })
          ctx.log(
            `  checks ${latency} ms run ${run}: ${all!.c} checks at ${Math.round(perS)}/s overall; while busy ${Math.round(used)}/s = ${Math.round((100 * used) / quota)} % of ${quota}/s (${JSON.stringify(perCheck)}); cpu% ${JSON.stringify(cpuPct(m))}`,
          )
        } finally {
          await sabt.cleanup()
        }
      }
    const at = (l: number) => rows.filter((r) => r.latency === l)
    return {
      name: 'checks',
      title: this.title,
      markdown: [
        `${n.toLocaleString('en-US')} registrations of campaign \`demo\` (identity, mobile after identity, eligibility) recorded first; then the checker starts against the simulator at a fixed latency. Checks/s = answered checks ÷ first → last answer. Share of the rate limit = Σ over checks of (its answers ÷ the span it was busy) ÷ Σ rate_per_second; mobile runs only after identity passed, so it has less work. 50 ms: the shipped limits (config/sabt.yaml, 300/s per check). 20 ms: limits lifted (bench/config/capacity.yaml, 20,000/s, concurrency 128) — the checker's own capacity, compared with the seed's at its mock's 20 ms.`,
        '',
        '| provider latency | checks/s (overall) | share of the combined rate limit, while busy | per check: answers/s of limit | checker CPU % |',
        '|---:|---:|---:|---|---:|',
        ...latencies.map(
          (l) =>
            `| ${l} ms | ${fmt(
              over(at(l), (r) => r.per_s),
              0,
            )} | ${fmt(
              over(at(l), (r) => r.quota * 100),
              0,
            )} % | ${Object.keys(at(l)[0]?.per_check ?? {})
              .map(
                (c) =>
                  `${c} ${fmt(
                    over(at(l), (r) => r.per_check[c]?.per_s ?? Number.NaN),
                    0,
                  )}/${at(l)[0]!.per_check[c]!.limit}`,
              )
              .join(', ')} | ${fmt(
              over(at(l), (r) => r.cpu.checker ?? Number.NaN),
              0,
            )} |`,
        ),
        '',
      ].join('\n'),
      data: { rows },
      headline: {
        checks_per_s: over(at(50), (r) => r.per_s).median,
        quota_used: over(at(50), (r) => r.quota).median,
        ...(at(20).length ? { checks_per_s_20ms: over(at(20), (r) => r.per_s).median } : {}),
      },
    }
  },
}
