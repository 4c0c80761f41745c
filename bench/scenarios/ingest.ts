import { type BenchContext, profileArgs, type Scenario, type ScenarioResult } from '../lib/context.js'
import { allocateBase, type ClosedLoopResult, openLoopRun, wrk } from '../lib/load.js'
import type { OpenLoopResult } from '../lib/open-loop.js'
import { type Proc, startFloor } from '../lib/procs.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over, type Spread } from '../lib/stats.js'
import { cpuPct, cpuSeconds, type Measured, measure, rabbitPid } from '../lib/system.js'

/**
 * Ingest: the gateway and the broker alone (no recorder: the intake queue just grows), closed loop
 * at fixed connection counts to find the ceiling, then open loop at 50 % and 80 % of it with
 * latency from the intended send time. In the same run, the same load against two floors: a bare
 * node:http server and a bare Fastify route with the gateway's schema, and the CPU each spends per
 * accepted request.
 */
type Target = 'node-http' | 'fastify' | 'gateway'
const TARGETS: Target[] = ['node-http', 'fastify', 'gateway']
const LABEL: Record<Target, string> = {
  'node-http': 'floor: bare node:http (read body, 202)',
  fastify: 'floor: bare Fastify + RegistrationBody schema',
  gateway: 'Sabt gateway (validate, publish, confirm)',
}

interface ClosedRun {
  target: Target
  connections: number
  run: number
  m: Measured<ClosedLoopResult>
  cpu_us_per_req: number
  in_queue?: number
  missing_from_queue?: number
}
interface OpenRun {
  target: Target
  share: number
  run: number
  m: Measured<OpenLoopResult & { driver_cpu_s: number | null }>
  cpu_us_per_req: number
}

export const ingest: Scenario = {
  name: 'ingest',
  title: 'Ingest (gateway + broker; recorder not running)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const conns = ctx.quick ? [64] : [16, 64, 256]
    const closedS = ctx.quick ? 3 : 10
    const openS = ctx.quick ? 4 : 15
    const sabt = await BenchSabt.create('ingest')
    const servers: Partial<Record<Target, Proc & { url: string }>> = {}
    try {
      servers['node-http'] = await startFloor('node-http')
      servers.fastify = await startFloor('fastify')
      servers.gateway = await sabt.start('gateway', {
        name: 'ingest-gateway',
        nodeArgs: profileArgs(ctx, 'gateway'),
      })
      const beam = rabbitPid()
      const urlOf = (t: Target) => `${servers[t]!.url}/v1/registrations`

      // Warm-up: JIT, connection pools, the broker's queue process.
      for (const t of TARGETS) await wrk({ url: urlOf(t), connections: 64, durationS: 2, campaign: 'demo' })
      await sabt.purgeAll()

      const closed: ClosedRun[] = []
      for (let run = 1; run <= ctx.runs; run++) {
        for (const c of conns) {
          for (const t of TARGETS) {
            const idle = await ctx.idle()
            const server = servers[t]!
            const procs: Record<string, () => number | null> = { server: () => cpuSeconds(server.pid) }
            if (t === 'gateway' && beam) procs.rabbitmq = () => cpuSeconds(beam)
            const m = await measure(procs, () =>
              wrk({
                url: urlOf(t),
                connections: c,
                durationS: closedS,
                campaign: 'demo',
                base: allocateBase(),
              }),
            )
            const accepted = m.result.requests - m.result.non2xx
            const r: ClosedRun = {
              target: t,
              connections: c,
              run,
              m: { ...m, idle } as Measured<ClosedLoopResult>,
              cpu_us_per_req: accepted > 0 ? Math.round((m.cpu_s.server! * 1e6) / accepted) : Number.NaN,
            }
            if (t === 'gateway') {
              // Every 202 was publisher-confirmed: it must be in the intake queue now.
              await new Promise((res) => setTimeout(res, 300))
              r.in_queue = await sabt.takeIntakeRecords()
              r.missing_from_queue = Math.max(0, accepted - r.in_queue)
              await sabt.purgeAll()
            }
            closed.push(r)
            ctx.log(
              `  ingest ${t} c=${c} run ${run}: ${m.result.accepted_rps} 2xx/s p99 ${m.result.p99_ms} ms, ` +
                `${r.cpu_us_per_req} µs CPU/req, cpu% ${JSON.stringify(cpuPct(m))}, machine ${m.machine_busy_pct}%` +
                (t === 'gateway' ? `, in queue ${r.in_queue}/${accepted}` : ''),
            )
          }
        }
      }

      const closedStats = (t: Target, c: number) => {
        const rs = closed.filter((r) => r.target === t && r.connections === c)
        return {
          accepted_rps: over(rs, (r) => r.m.result.accepted_rps),
          p50_ms: over(rs, (r) => r.m.result.p50_ms),
          p99_ms: over(rs, (r) => r.m.result.p99_ms),
          p999_ms: over(rs, (r) => r.m.result.p999_ms),
          cpu_us_per_req: over(rs, (r) => r.cpu_us_per_req),
          server_cpu_pct: over(rs, (r) => cpuPct(r.m).server!),
          rabbitmq_cpu_pct: over(rs, (r) => cpuPct(r.m).rabbitmq ?? Number.NaN),
          loadgen_cpu_pct: over(rs, (r) => cpuPct(r.m).loadgen ?? Number.NaN),
          errors: rs.reduce((a, r) => a + r.m.result.errors + r.m.result.non2xx, 0),
          missing_from_queue: rs.reduce((a, r) => a + (r.missing_from_queue ?? 0), 0),
        }
      }
      const gwMax = Math.max(...conns.map((c) => closedStats('gateway', c).accepted_rps.median))

      // Open loop at fixed shares of the gateway's measured maximum; the Fastify floor at 50 % too,
      // for CPU per request at the same offered rate.
      const open: OpenRun[] = []
      const plan: { target: Target; share: number }[] = [
        { target: 'gateway', share: 0.5 },
        { target: 'gateway', share: 0.8 },
        { target: 'fastify', share: 0.5 },
      ]
      for (let run = 1; run <= ctx.runs; run++) {
        for (const p of plan) {
          const idle = await ctx.idle()
          const rate = Math.max(100, Math.round(gwMax * p.share))
          const server = servers[p.target]!
          const procs: Record<string, () => number | null> = { server: () => cpuSeconds(server.pid) }
          if (p.target === 'gateway' && beam) procs.rabbitmq = () => cpuSeconds(beam)
          const m = await measure(procs, () =>
            openLoopRun({
              url: urlOf(p.target),
              rate,
              durationS: openS,
              warmupS: ctx.quick ? 1 : 2,
              connections: 64,
              campaign: 'demo',
              base: allocateBase(),
            }),
          )
          const r: OpenRun = {
            target: p.target,
            share: p.share,
            run,
            m: { ...m, idle } as OpenRun['m'],
            cpu_us_per_req:
              m.result.accepted > 0 ? Math.round((m.cpu_s.server! * 1e6) / m.result.accepted) : Number.NaN,
          }
          open.push(r)
          if (p.target === 'gateway') await sabt.purgeAll()
          ctx.log(
            `  ingest open-loop ${p.target} ${Math.round(p.share * 100)}% (${rate}/s) run ${run}: ${m.result.accepted_rps} 202/s ` +
              `p50 ${m.result.p50_ms} p99 ${m.result.p99_ms} p99.9 ${m.result.p999_ms} ms, ${r.cpu_us_per_req} µs CPU/req`,
          )
        }
      }
      const openStats = (t: Target, share: number) => {
        const rs = open.filter((r) => r.target === t && r.share === share)
        return {
          offered_rps: over(rs, (r) => r.m.result.offered_rps),
          accepted_rps: over(rs, (r) => r.m.result.accepted_rps),
          p50_ms: over(rs, (r) => r.m.result.p50_ms),
          p99_ms: over(rs, (r) => r.m.result.p99_ms),
          p999_ms: over(rs, (r) => r.m.result.p999_ms),
          max_ms: over(rs, (r) => r.m.result.max_ms),
          cpu_us_per_req: over(rs, (r) => r.cpu_us_per_req),
          server_cpu_pct: over(rs, (r) => cpuPct(r.m).server!),
          failed: rs.reduce((a, r) => a + (r.m.result.sent - r.m.result.accepted) + r.m.result.dropped, 0),
        }
      }

      // Markdown
      const lines: string[] = []
      lines.push(
        `Closed loop (wrk, 2 threads, ${closedS} s per run; distinct valid registrations): 2xx/s, latency, and the server's CPU per answered request.`,
        '',
        '| server | conns | 2xx req/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/req | server CPU % | broker CPU % | wrk CPU % |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      )
      const stats: Record<string, unknown> = {}
      for (const c of conns)
        for (const t of TARGETS) {
          const s = closedStats(t, c)
          stats[`${t}@${c}`] = s
          lines.push(
            `| ${LABEL[t]} | ${c} | ${fmt(s.accepted_rps, 0)} | ${fmt(s.p50_ms, 2)} | ${fmt(s.p99_ms, 2)} | ${fmt(s.p999_ms, 2)} | ${fmt(s.cpu_us_per_req, 0)} | ${fmt(s.server_cpu_pct, 0)} | ${t === 'gateway' ? fmt(s.rabbitmq_cpu_pct, 0) : '—'} | ${fmt(s.loadgen_cpu_pct, 0)} |`,
          )
        }
      lines.push(
        '',
        `Open loop (bench/lib/open-loop.ts, 64 connections, ${openS} s per run; latency from each request's intended send time). Gateway maximum: ${Math.round(gwMax).toLocaleString('en-US')} req/s.`,
        '',
        '| server | offered | req/s offered | 202 req/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/req | server CPU % | not 202 |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      )
      for (const p of plan) {
        const s = openStats(p.target, p.share)
        stats[`${p.target}@open${Math.round(p.share * 100)}`] = s
        lines.push(
          `| ${LABEL[p.target]} | ${Math.round(p.share * 100)} % | ${fmt(s.offered_rps, 0)} | ${fmt(s.accepted_rps, 0)} | ${fmt(s.p50_ms, 2)} | ${fmt(s.p99_ms, 2)} | ${fmt(s.p999_ms, 2)} | ${fmt(s.max_ms, 1)} | ${fmt(s.cpu_us_per_req, 0)} | ${fmt(s.server_cpu_pct, 0)} | ${s.failed} |`,
        )
      }
      const ratioAt = (c: number) =>
        closedStats('gateway', c).cpu_us_per_req.median / closedStats('fastify', c).cpu_us_per_req.median
      const openRatio =
        openStats('gateway', 0.5).cpu_us_per_req.median / openStats('fastify', 0.5).cpu_us_per_req.median
      const missing = conns.reduce((a, c) => a + closedStats('gateway', c).missing_from_queue, 0)
      lines.push(
        '',
        `Gateway CPU per accepted request ÷ bare Fastify route's: ${conns.map((c) => `${ratioAt(c).toFixed(2)}× at ${c} conns`).join(', ')}; ${openRatio.toFixed(2)}× at the same open-loop rate (50 % of the gateway maximum).`,
        `202s missing from the intake queue after each closed-loop run (each 202 is publisher-confirmed): ${missing}.`,
      )
      const best = (t: Target) => Math.max(...conns.map((c) => closedStats(t, c).accepted_rps.median))
      return {
        name: 'ingest',
        title: this.title,
        markdown: `${lines.join('\n')}\n`,
        data: { closed, open, stats, gateway_max_rps: gwMax },
        headline: {
          gateway_max_rps: gwMax,
          node_http_max_rps: best('node-http'),
          fastify_max_rps: best('fastify'),
          p99_at_80pct_ms: openStats('gateway', 0.8).p99_ms.median,
          cpu_ratio_open50: openRatio,
          cpu_ratio_closed64: ratioAt(64),
          cpu_ratio_closed256: conns.includes(256) ? ratioAt(256) : Number.NaN,
          // What the 80 % point asks of the one gateway process: its rate × its CPU per request there.
          open80_rps: openStats('gateway', 0.8).offered_rps.median,
          open80_gateway_us: openStats('gateway', 0.8).cpu_us_per_req.median,
          missing_from_queue: missing,
        },
      }
    } finally {
      for (const s of Object.values(servers)) await s?.stop()
      await sabt.cleanup()
    }
  },
}

export type { Spread }
