import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BenchContext, profileArgs, type Scenario, type ScenarioResult } from '../lib/context.js'
import { allocateBase, type ClosedLoopResult, openLoopRun, wrk } from '../lib/load.js'
import type { OpenLoopResult } from '../lib/open-loop.js'
import { ROOT } from '../lib/procs.js'
import { writeSolutions } from '../lib/proof-of-work.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over, type Spread } from '../lib/stats.js'
import { cpuPct, cpuSeconds, type Measured, measure, rabbitPid } from '../lib/system.js'

/**
 * What the front door's options cost, in the same run: the gateway as shipped (campaign `demo`),
 * the same gateway process on a campaign with the proof-of-work gate on (issue 14: every request
 * carries a fresh ALTCHA solution in X-Altcha, verified and spent), the same solutions sent to the
 * campaign without a gate (what the larger request costs by itself: the gate's cost is then its
 * verification, not the bytes), and a second gateway with
 * `SABT_SEAL_AT=gateway` (issue 11 item 4: national id and mobile sealed before the publish).
 * Closed loop, 64 connections, interleaved run by run; accepted/s and the gateway's CPU per 202.
 */
type Variant = 'default' | 'header' | 'pow' | 'seal'
const VARIANTS: Variant[] = ['default', 'header', 'pow', 'seal']
const LABEL: Record<Variant, string> = {
  default: 'gateway as shipped (campaign without a gate, recorder seals)',
  header: 'the same X-Altcha headers to the campaign without a gate (the bytes, not the check)',
  pow: 'proof-of-work gate on (same process, campaign `gated`)',
  seal: '`SABT_SEAL_AT=gateway` (its own gateway process)',
}
/**
 * The variants' order in run `run`, turned by one each run: whichever goes first after the purge
 * and the idle wait runs on a broker and a process in another state than the ones after it (the
 * shipped gateway, always first, was 8 % dearer than the same process with extra headers).
 */
const inTurn = (run: number): Variant[] => VARIANTS.map((_, i) => VARIANTS[(i + run - 1) % VARIANTS.length]!)
/** The variants whose requests carry a solution in X-Altcha. */
const carries = (v: Variant) => v === 'pow' || v === 'header'
const SECRET = 'bench-proof-of-work-secret-not-a-real-one'
const MAX_NUMBER = 50_000

interface Run {
  variant: Variant
  run: number
  m: Measured<ClosedLoopResult>
  cpu_us_per_req: number
}
interface OpenRun {
  variant: Variant
  run: number
  m: Measured<OpenLoopResult & { driver_cpu_s: number | null }>
  cpu_us_per_req: number
}

export const gates: Scenario = {
  name: 'gates',
  title: 'The front door’s options: proof-of-work gate, sealing at the gateway (same run)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const conns = 64
    const durationS = ctx.quick ? 3 : 10
    const sabt = await BenchSabt.create('gates', {
      SABT_CONFIG: join(ROOT, 'bench', 'config', 'gates.yaml'),
      SABT_POW_SECRET: SECRET,
    })
    const dir = await mkdtemp(join(tmpdir(), 'sabt-bench-pow-'))
    try {
      const prof = (name: string) => profileArgs(ctx, name)
      const plain = await sabt.start('gateway', { name: 'gates-gateway', nodeArgs: prof('gates-gateway') })
      const sealing = await sabt.start('gateway', {
        name: 'gates-gateway-seal',
        env: { SABT_SEAL_AT: 'gateway' },
      })
      const beam = rabbitPid()
      const serverOf = (v: Variant) => (v === 'seal' ? sealing : plain)
      // Enough solutions for the fastest run seen so far, with room: one spent per request.
      const ceiling = Math.max(20_000, (ctx.earlier.ingest?.headline?.gateway_max_rps ?? 20_000) * 1.6)
      const solutions = async (tag: string, s: number) => {
        const prefix = join(dir, tag)
        await writeSolutions({
          secret: SECRET,
          campaign: 'gated',
          count: Math.round(ceiling * s),
          prefix,
          threads: 2,
          maxNumber: MAX_NUMBER,
        })
        return prefix
      }
      const load = async (v: Variant, s: number, tag: string) =>
        wrk({
          url: `${serverOf(v).url}/v1/registrations`,
          connections: conns,
          durationS: s,
          campaign: v === 'pow' ? 'gated' : 'demo',
          base: allocateBase(),
          ...(carries(v) ? { altcha: await solutions(tag, s) } : {}),
        })
      for (const v of VARIANTS) await load(v, 2, `warm-${v}`)
      await sabt.purgeAll()

      const runs: Run[] = []
      for (let run = 1; run <= ctx.runs; run++)
        for (const v of inTurn(run)) {
          const altcha = carries(v) ? await solutions(`run-${run}`, durationS + 1) : undefined
          const idle = await ctx.idle()
          const server = serverOf(v)
          const procs: Record<string, () => number | null> = { server: () => cpuSeconds(server.pid) }
          if (beam) procs.rabbitmq = () => cpuSeconds(beam)
          const m = await measure(procs, () =>
            wrk({
              url: `${server.url}/v1/registrations`,
              connections: conns,
              durationS,
              campaign: v === 'pow' ? 'gated' : 'demo',
              base: allocateBase(),
              ...(altcha ? { altcha } : {}),
            }),
          )
          const accepted = m.result.requests - m.result.non2xx
          const r: Run = {
            variant: v,
            run,
            m: { ...m, idle } as Measured<ClosedLoopResult>,
            cpu_us_per_req: accepted > 0 ? Math.round((m.cpu_s.server! * 1e6) / accepted) : Number.NaN,
          }
          runs.push(r)
          await sabt.purgeAll()
          ctx.log(
            `  gates ${v} run ${run}: ${m.result.accepted_rps} 2xx/s (${m.result.non2xx} not 2xx) p99 ${m.result.p99_ms} ms, ${r.cpu_us_per_req} µs CPU/202, cpu% ${JSON.stringify(cpuPct(m))}`,
          )
        }

      // The same offered rate for the three (half the shipped gateway's closed-loop median): the
      // gateway's CPU per 202 when none of them is saturated, the steadier of the two costs.
      const rate = Math.round(
        0.5 *
          over(
            runs.filter((r) => r.variant === 'default'),
            (r) => r.m.result.accepted_rps,
          ).median,
      )
      const openS = ctx.quick ? 4 : 15
      const open: OpenRun[] = []
      for (let run = 1; run <= ctx.runs; run++)
        for (const v of inTurn(run)) {
          const altcha = carries(v)
            ? await writeSolutions({
                secret: SECRET,
                campaign: 'gated',
                count: Math.round(rate * (openS + 3)),
                prefix: join(dir, `open-${run}`),
                threads: 1,
                maxNumber: MAX_NUMBER,
              }).then(() => join(dir, `open-${run}.0`))
            : undefined
          const idle = await ctx.idle()
          const server = serverOf(v)
          const m = await measure({ server: () => cpuSeconds(server.pid) }, () =>
            openLoopRun({
              url: `${server.url}/v1/registrations`,
              rate,
              durationS: openS,
              warmupS: 2,
              connections: 64,
              campaign: v === 'pow' ? 'gated' : 'demo',
              base: allocateBase(),
              ...(altcha ? { altcha } : {}),
            }),
          )
          const r: OpenRun = {
            variant: v,
            run,
            m: { ...m, idle } as OpenRun['m'],
            cpu_us_per_req:
              m.result.accepted > 0 ? Math.round((m.cpu_s.server! * 1e6) / m.result.accepted) : Number.NaN,
          }
          open.push(r)
          await sabt.purgeAll()
          ctx.log(
            `  gates open-loop ${v} ${rate}/s run ${run}: ${m.result.accepted_rps} 202/s p99 ${m.result.p99_ms} ms, ${r.cpu_us_per_req} µs CPU/202`,
          )
        }
      const openStats = (v: Variant) => {
        const rs = open.filter((r) => r.variant === v)
        return {
          accepted_rps: over(rs, (r) => r.m.result.accepted_rps),
          p99_ms: over(rs, (r) => r.m.result.p99_ms),
          cpu_us_per_req: over(rs, (r) => r.cpu_us_per_req),
          not_202: rs.reduce((a, r) => a + (r.m.result.sent - r.m.result.accepted) + r.m.result.dropped, 0),
        }
      }
      const cpuCost = (v: Variant, against: Variant = 'default') =>
        over(
          Array.from({ length: ctx.runs }, (_, i) => i + 1),
          (run) =>
            open.find((r) => r.variant === v && r.run === run)!.cpu_us_per_req /
              open.find((r) => r.variant === against && r.run === run)!.cpu_us_per_req -
            1,
        )

      const stats = (v: Variant) => {
        const rs = runs.filter((r) => r.variant === v)
        return {
          accepted_rps: over(rs, (r) => r.m.result.accepted_rps),
          p99_ms: over(rs, (r) => r.m.result.p99_ms),
          cpu_us_per_req: over(rs, (r) => r.cpu_us_per_req),
          server_cpu_pct: over(rs, (r) => cpuPct(r.m).server!),
          rabbitmq_cpu_pct: over(rs, (r) => cpuPct(r.m).rabbitmq ?? Number.NaN),
          not_2xx: rs.reduce((a, r) => a + r.m.result.non2xx + r.m.result.errors, 0),
        }
      }
      const base = stats('default')
      // Cost = what the option takes off accepted/s (median of the per-run ratios: each run's
      // variants ran back to back, so a ratio within a run is less noisy than across runs).
      const cost = (v: Variant, against: Variant = 'default') =>
        over(
          Array.from({ length: ctx.runs }, (_, i) => i + 1),
          (run) => {
            const a = runs.find((r) => r.variant === against && r.run === run)!
            const b = runs.find((r) => r.variant === v && r.run === run)!
            return 1 - b.m.result.accepted_rps / a.m.result.accepted_rps
          },
        )
      const pct = (c: Spread) => fmt({ ...c, median: c.median * 100, min: c.min * 100, max: c.max * 100 }, 1)
      const lines = [
        `Closed loop (wrk, 2 threads, ${conns} connections, ${durationS} s per run, the variants back to back in each run, their order turned by one each run; distinct valid registrations). The gate's solutions are made by the bench with the gateway's SABT_POW_SECRET, one per request (bench/lib/proof-of-work.ts): the server verifies each (SHA-256 + HMAC) and remembers it spent. Cost = 1 − accepted/s ÷ the shipped gateway's in the same run (median of the runs).`,
        '',
        '| gateway | 2xx req/s | cost | p99 ms | gateway CPU µs per 202 | gateway CPU % | broker CPU % | not 2xx |',
        '|---|---:|---:|---:|---:|---:|---:|---:|',
        ...VARIANTS.map((v) => {
          const s = stats(v)
          return `| ${LABEL[v]} | ${fmt(s.accepted_rps, 0)} | ${v === 'default' ? '—' : `${pct(cost(v))} %`} | ${fmt(s.p99_ms, 2)} | ${fmt(s.cpu_us_per_req, 0)} | ${fmt(s.server_cpu_pct, 0)} | ${fmt(s.rabbitmq_cpu_pct, 0)} | ${s.not_2xx} |`
        }),
        '',
        `Open loop (bench/lib/open-loop.ts, 64 connections, ${openS} s per run after 2 s of warm-up) at ${rate.toLocaleString('en-US')} req/s for all three — half the shipped gateway's closed-loop median: the gateway's CPU per 202 when it is not saturated. Cost = its CPU per 202 ÷ the shipped gateway's in the same run − 1 (median of the runs).`,
        '',
        '| gateway | 202 req/s | p99 ms | gateway CPU µs per 202 | CPU cost | not 202 |',
        '|---|---:|---:|---:|---:|---:|',
        ...VARIANTS.map((v) => {
          const s = openStats(v)
          return `| ${LABEL[v]} | ${fmt(s.accepted_rps, 0)} | ${fmt(s.p99_ms, 2)} | ${fmt(s.cpu_us_per_req, 0)} | ${v === 'default' ? '—' : `${pct(cpuCost(v))} %`} | ${s.not_202} |`
        }),
        '',
        `The gate's verification alone (against the same X-Altcha headers sent to the campaign without a gate, same run): ${pct(cost('pow', 'header'))} % of accepted/s closed loop, ${pct(cpuCost('pow', 'header'))} % of the gateway's CPU per 202 open loop.`,
        '',
      ]
      return {
        name: 'gates',
        title: this.title,
        markdown: lines.join('\n'),
        data: {
          runs,
          open,
          stats: Object.fromEntries(VARIANTS.map((v) => [v, { closed: stats(v), open: openStats(v) }])),
        },
        headline: {
          default_rps: base.accepted_rps.median,
          pow_cost: cost('pow').median,
          seal_cost: cost('seal').median,
          pow_cpu_cost: cpuCost('pow').median,
          pow_cost_vs_header: cost('pow', 'header').median,
          pow_cpu_cost_vs_header: cpuCost('pow', 'header').median,
          seal_cpu_cost: cpuCost('seal').median,
          pow_not_2xx: stats('pow').not_2xx + openStats('pow').not_202,
        },
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
      await sabt.cleanup()
    }
  },
}
