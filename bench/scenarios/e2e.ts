import { join } from 'node:path'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/context.js'
import { skipped } from '../lib/context.js'
import { allocateBase, openLoopRun } from '../lib/load.js'
import { checksAvailable, lossCheck, pipelineCpu, roleBackends, startPipeline } from '../lib/pipeline.js'
import { LOG_DIR } from '../lib/procs.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'
import { cpuPct, measure } from '../lib/system.js'

/**
 * End to end: a fixed surge of N registrations sent open loop, every role running (the checker
 * against the provider simulator at a fixed latency); the time from the first request until the
 * last registration of the surge has its verdict. Bounded below by the providers' rate limits
 * (config/sabt.yaml), which the report states next to the figure.
 */
const VERDICTS = "('accepted', 'rejected', 'failed')"

export const e2e: Scenario = {
  name: 'e2e',
  title: 'End to end (first request → last verdict of a fixed surge)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const avail = checksAvailable()
    if (!avail.ok) return skipped('e2e', this.title, avail.why)
    const n = Number(process.env.SABT_BENCH_E2E_N ?? (ctx.quick ? 1000 : 100_000))
    const latency = process.env.SABT_BENCH_PROVIDER_LATENCY_MS ?? '20'
    const rate = Math.round(
      Number(process.env.SABT_BENCH_E2E_RATE) || (ctx.earlier.surge?.headline?.sustained_rps ?? 0) || 5000,
    )
    const runs = []
    for (let run = 1; run <= (ctx.quick ? 1 : ctx.runs); run++) {
      const sabt = await BenchSabt.create('e2e')
      try {
        const roles = await startPipeline(sabt, ctx)
        let pg: number[] = []
        await ctx.idle()
        pg = await roleBackends(sabt)
        const idsFile = join(LOG_DIR, `e2e-${run}-${Date.now()}.ids`)
        const t0 = Date.now()
        const m = await measure(
          pipelineCpu(sabt, roles, () => pg),
          async () => {
            const sent = await openLoopRun({
              url: `${roles.gateway!.url}/v1/registrations`,
              rate,
              durationS: n / rate,
              connections: 128,
              campaign: 'demo',
              base: allocateBase(),
              idsFile,
            })
            for (;;) {
              pg = await roleBackends(sabt)
              const [{ c }] = (await sabt.sql<{ c: number }>(
                `SELECT count(*)::int AS c FROM registrations WHERE status IN ${VERDICTS}`,
              )) as [{ c: number }]
              if (c >= sent.accepted) break
              if (Date.now() - t0 > 30 * 60_000)
                throw new Error(`e2e: ${c} of ${sent.accepted} verdicts after 30 min`)
              await new Promise((r) => setTimeout(r, 1000))
            }
            return sent
          },
        )
        const [last] = await sabt.sql<{ t: number }>(
          `SELECT extract(epoch FROM max(verdict_at))::float8 * 1000 AS t FROM registrations WHERE status IN ${VERDICTS}`,
        )
        const loss = await lossCheck(sabt, idsFile)
        const seconds = (last!.t - t0) / 1000
        runs.push({ run, n, rate, seconds, m, loss })
        ctx.log(
          `  e2e run ${run}: ${n} at ${rate}/s → last verdict after ${seconds.toFixed(1)} s; cpu% ${JSON.stringify(cpuPct(m))}`,
        )
      } finally {
        await sabt.cleanup()
      }
    }
    const secs = over(runs, (r) => r.seconds)
    const lost = runs.reduce((a, r) => a + r.loss.lost, 0)
    const dups = runs.reduce((a, r) => a + r.loss.duplicates, 0)
    return {
      name: 'e2e',
      title: this.title,
      markdown: [
        `${n.toLocaleString('en-US')} registrations (campaign \`demo\`: identity, mobile after identity, eligibility) offered at ${rate.toLocaleString('en-US')} req/s; provider latency ${latency} ms; rate limits as in config/sabt.yaml.`,
        '',
        '| | seconds | registrations with a verdict / s |',
        '|---|---:|---:|',
        `| first request → last verdict | ${fmt(secs, 1)} | ${fmt(
          over(runs, (r) => r.n / r.seconds),
          0,
        )} |`,
        '',
        `Lost ${lost}, duplicates ${dups}.`,
        '',
      ].join('\n'),
      data: { runs },
      headline: { seconds: secs.median, lost, duplicates: dups },
    }
  },
}
