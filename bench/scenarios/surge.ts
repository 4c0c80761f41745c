import { join } from 'node:path'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/context.js'
import { allocateBase, openLoopRun } from '../lib/load.js'
import type { OpenLoopResult } from '../lib/open-loop.js'
import { checksAvailable, lossCheck, pipelineCpu, roleBackends, startPipeline } from '../lib/pipeline.js'
import { LOG_DIR } from '../lib/procs.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'
import { cpuPct, type Measured, measure } from '../lib/system.js'

/**
 * Sustained surge: every role as its own process, an open-loop offered rate held, the intake
 * queue's depth sampled every second. A rate is sustained when (nearly) every request is answered
 * 202 and the backlog does not grow: its slope over the second half of the hold is under 1 % of
 * the rate per second and it ends below 2 s worth of intake. A short search finds the highest such
 * rate; then it is held for 60 s, three times, and every 202'd id is looked for in PostgreSQL.
 */
interface Hold {
  rate: number
  seconds: number
  kind: 'probe' | 'hold'
  m: Measured<OpenLoopResult>
  depth: number[]
  slope_per_s: number
  final_depth: number
  sustained: boolean
  why: string
  loss?: Awaited<ReturnType<typeof lossCheck>>
}

function slope(ys: number[]): number {
  const n = ys.length
  if (n < 2) return 0
  const mx = (n - 1) / 2
  const my = ys.reduce((a, b) => a + b, 0) / n
  let num = 0
  let den = 0
  for (let i = 0; i < n; i++) {
    num += (i - mx) * (ys[i]! - my)
    den += (i - mx) ** 2
  }
  return num / den
}

export const surge: Scenario = {
  name: 'surge',
  title: 'Sustained surge (every role a separate process, open-loop rate held)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const sabt = await BenchSabt.create('surge')
    const holds: Hold[] = []
    const withChecks = checksAvailable().ok
    try {
      const roles = await startPipeline(sabt, ctx)
      const url = `${roles.gateway!.url}/v1/registrations`
      let pg: number[] = []
      const hold = async (rate: number, seconds: number, kind: Hold['kind']): Promise<Hold> => {
        await ctx.idle()
        pg = await roleBackends(sabt)
        const depth: number[] = []
        let sampling = true
        const sampler = (async () => {
          while (sampling) {
            depth.push(await sabt.intakeDepth())
            await new Promise((r) => setTimeout(r, 1000))
          }
        })()
        const idsFile = join(LOG_DIR, `surge-${rate}-${Date.now()}.ids`)
        const m = await measure(
          pipelineCpu(sabt, roles, () => pg),
          () =>
            openLoopRun({
              url,
              rate,
              durationS: seconds,
              warmupS: 1,
              connections: 128,
              campaign: 'demo',
              base: allocateBase(),
              idsFile,
            }),
        )
        sampling = false
        await sampler
        const tail = depth.slice(Math.floor(depth.length / 2))
        const s = slope(tail)
        const final = depth[depth.length - 1] ?? 0
        const notTaken = m.result.sent - m.result.accepted + m.result.dropped
        const reasons: string[] = []
        if (notTaken > m.result.sent * 0.005) reasons.push(`${notTaken} not answered 202`)
        if (s > rate * 0.01) reasons.push(`backlog growing ${Math.round(s)}/s`)
        if (final > rate * 2) reasons.push(`backlog ${final} at the end`)
        // Requests waiting in front of the gateway are a backlog too (it shows as latency).
        if (m.result.p99_ms > 1000) reasons.push(`p99 ${Math.round(m.result.p99_ms)} ms`)
        const h: Hold = {
          rate,
          seconds,
          kind,
          m,
          depth,
          slope_per_s: Math.round(s),
          final_depth: final,
          sustained: reasons.length === 0,
          why: reasons.join('; ') || 'sustained',
        }
        h.loss = await lossCheck(sabt, idsFile)
        await sabt.truncate()
        await sabt.purgeAll()
        ctx.log(
          `  surge ${kind} ${rate}/s × ${seconds}s: ${m.result.accepted_rps} 202/s, p99 ${m.result.p99_ms} ms, backlog slope ${h.slope_per_s}/s end ${final} → ${h.why}; ` +
            `lost ${h.loss.lost} dups ${h.loss.duplicates}; cpu% ${JSON.stringify(cpuPct(m))}, machine ${m.machine_busy_pct}%`,
        )
        holds.push(h)
        return h
      }

      const ingestMax = ctx.earlier.ingest?.headline?.gateway_max_rps
      const drainRate = ctx.earlier.drain?.headline?.recorded_per_s
      let rate = Math.round(
        Number(process.env.SABT_BENCH_SURGE_RATE) ||
          Math.min(ingestMax ? ingestMax * 0.7 : 6000, drainRate ? drainRate * 0.9 : 6000),
      )
      let found = rate
      if (ctx.quick) {
        await hold(rate, 8, 'probe')
      } else {
        // Search: 20 s probes from a first guess, six steps: up by a quarter while a rate holds,
        // halved while none has held yet (the first guess can be several times too high: it comes
        // from the gateway alone and the recorder alone), then by bisection between the two.
        let lo = 0
        let hi = Number.POSITIVE_INFINITY
        for (let step = 0; step < 6; step++) {
          const h = await hold(rate, 20, 'probe')
          if (h.sustained) lo = rate
          else hi = rate
          rate = !Number.isFinite(hi) ? rate * 1.25 : lo === 0 ? hi / 2 : (lo + hi) / 2
          rate = Math.max(100, Math.round(rate / 100) * 100)
        }
        found = lo > 0 ? lo : Math.round(hi / 2)
        for (let run = 1; run <= ctx.runs; run++) await hold(found, 60, 'hold')
      }
      const final = holds.filter((h) => h.kind === (ctx.quick ? 'probe' : 'hold'))
      const sustainedRate = ctx.quick
        ? final[0]!.sustained
          ? final[0]!.rate
          : 0
        : final.filter((h) => h.sustained).length * 2 > final.length
          ? found
          : 0
      const lost = holds.reduce((a, h) => a + (h.loss?.lost ?? 0), 0)
      const dups = holds.reduce((a, h) => a + (h.loss?.duplicates ?? 0), 0)
      const acked = holds.reduce((a, h) => a + (h.loss?.acknowledged ?? 0), 0)
      const cpu = (k: string) => over(final, (h) => cpuPct(h.m)[k] ?? Number.NaN)
      const md = [
        `Roles: gateway, recorder, status${withChecks ? ', checker, simulator' : ' (checker and simulator not in this build yet)'}, each its own process; open-loop driver with 128 connections.`,
        '',
        '| phase | offered req/s | 202 req/s | p50 ms | p99 ms | p99.9 ms | backlog slope /s | backlog at end | verdict | lost | dup |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|',
        ...holds.map(
          (h) =>
            `| ${h.kind} ${h.seconds} s | ${h.rate.toLocaleString('en-US')} | ${h.m.result.accepted_rps.toLocaleString('en-US')} | ${h.m.result.p50_ms} | ${h.m.result.p99_ms} | ${h.m.result.p999_ms} | ${h.slope_per_s} | ${h.final_depth} | ${h.why} | ${h.loss?.lost ?? '—'} | ${h.loss?.duplicates ?? '—'} |`,
        ),
        '',
        `CPU % of one core during the ${ctx.quick ? 'probe' : '60 s holds'} (median): ${[
          'gateway',
          'recorder',
          'status',
          'checker',
          'simulator',
          'rabbitmq',
          'postgres',
          'loadgen',
        ]
          .map((k) => [k, cpu(k)] as const)
          .filter(([, s]) => s.n > 0)
          .map(([k, s]) => `${k} ${fmt(s, 0)}`)
          .join(', ')}; machine busy ${fmt(
          over(final, (h) => h.m.machine_busy_pct),
          0,
        )} % of 2 cores.`,
        `Sustained: **${sustainedRate ? sustainedRate.toLocaleString('en-US') : 'none of the rates tried'} req/s**. Loss check over ${acked.toLocaleString('en-US')} acknowledged registrations: ${lost} lost, ${dups} duplicated.`,
        '',
      ].join('\n')
      return {
        name: 'surge',
        title: this.title,
        markdown: md,
        data: {
          holds: holds.map((h) => ({ ...h, m: { ...h.m, cpu_pct: cpuPct(h.m) } })),
          sustained_rps: sustainedRate,
        },
        headline: {
          sustained_rps: sustainedRate,
          lost,
          duplicates: dups,
          acknowledged: acked,
          machine_busy_pct: over(final, (h) => h.m.machine_busy_pct).median,
          // The rate the search settled on and held three times, whether or not the holds kept it.
          held_rps: found,
        },
      }
    } finally {
      await sabt.cleanup()
    }
  },
}
