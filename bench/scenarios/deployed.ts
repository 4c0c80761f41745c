import { cpus } from 'node:os'
import { type BenchContext, profileArgs, type Scenario, type ScenarioResult } from '../lib/context.js'
import { allocateBase, type ClosedLoopResult, wrk } from '../lib/load.js'
import { type Proc, startFloor } from '../lib/procs.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'
import { cpuPct, cpuSeconds, type Measured, measure, rabbitPid } from '../lib/system.js'

/**
 * The intake as deployed: the gateway and the recorder as separate processes (checker not
 * running), 64 connections of distinct valid registrations, closed loop — against a bare node:http
 * server that answers 202 under the same load in the same run. What the broker spends per accepted
 * registration is measured too (the cost group commit takes away, issue 11).
 */
interface Run {
  target: 'node-http' | 'sabt'
  run: number
  m: Measured<ClosedLoopResult>
  accepted: number
}

export const deployed: Scenario = {
  name: 'deployed',
  title: 'Intake as deployed (gateway + recorder as separate processes, vs a bare node:http server)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const durationS = ctx.quick ? 4 : 10
    const connections = 64
    // The recorder publishes the records' first checks too (no checker runs: those queues grow).
    const sabt = await BenchSabt.create('deployed')
    let floor: (Proc & { url: string }) | null = null
    try {
      floor = await startFloor('node-http')
      const prof = (name: string) => profileArgs(ctx, name)
      const gateway = await sabt.start('gateway', {
        name: 'deployed-gateway',
        nodeArgs: prof('deployed-gateway'),
      })
      const recorder = await sabt.start('recorder', {
        name: 'deployed-recorder',
        nodeArgs: prof('deployed-recorder'),
      })
      const beam = rabbitPid()
      const url = (t: Run['target']) => `${t === 'sabt' ? gateway.url : floor!.url}/v1/registrations`
      for (const t of ['node-http', 'sabt'] as const)
        await wrk({ url: url(t), connections, durationS: 2, campaign: 'demo' })

      const runs: Run[] = []
      for (let run = 1; run <= ctx.runs; run++) {
        for (const t of ['node-http', 'sabt'] as const) {
          const idle = await ctx.idle()
          const procs: Record<string, () => number | null> =
            t === 'sabt'
              ? {
                  gateway: () => cpuSeconds(gateway.pid),
                  recorder: () => cpuSeconds(recorder.pid),
                  ...(beam ? { rabbitmq: () => cpuSeconds(beam) } : {}),
                }
              : { server: () => cpuSeconds(floor!.pid) }
          const m = await measure(procs, () =>
            wrk({ url: url(t), connections, durationS, campaign: 'demo', base: allocateBase() }),
          )
          const accepted = m.result.requests - m.result.non2xx
          runs.push({ target: t, run, m: { ...m, idle } as Measured<ClosedLoopResult>, accepted })
          ctx.log(
            `  deployed ${t} run ${run}: ${m.result.accepted_rps} 202/s, p99 ${m.result.p99_ms} ms, cpu% ${JSON.stringify(cpuPct(m))}`,
          )
        }
      }
      const of = (t: Run['target']) => runs.filter((r) => r.target === t)
      const perReg = (r: Run, proc: string) =>
        r.accepted > 0 && r.m.cpu_s[proc] !== undefined ? (r.m.cpu_s[proc]! * 1e6) / r.accepted : Number.NaN
      const sabtRps = over(of('sabt'), (r) => r.m.result.accepted_rps)
      const floorRps = over(of('node-http'), (r) => r.m.result.accepted_rps)
      const rabbitUs = over(of('sabt'), (r) => perReg(r, 'rabbitmq'))
      const gatewayUs = over(of('sabt'), (r) => perReg(r, 'gateway'))
      const recorderUs = over(of('sabt'), (r) => perReg(r, 'recorder'))
      const ratio = sabtRps.median / floorRps.median
      // Every process on the machine (the roles, RabbitMQ, PostgreSQL, wrk, the kernel) per accepted
      // registration: what both cores could take at this cost is the ceiling of any build like it.
      const machineUs = over(of('sabt'), (r) =>
        r.accepted > 0
          ? ((r.m.machine_busy_pct / 100) * cpus().length * r.m.wall_s * 1e6) / r.accepted
          : Number.NaN,
      )
      const lines = [
        `Closed loop (wrk, ${connections} connections, ${durationS} s per run, distinct valid registrations). The recorder writes as it goes and publishes each new record's first checks (no checker runs) (the intake queue stays short); CPU per accepted registration from /proc.`,
        '',
        '| server | 202 req/s | p50 ms | p99 ms | gateway CPU µs/reg | recorder CPU µs/reg | RabbitMQ CPU µs/reg | RabbitMQ CPU % |',
        '|---|---:|---:|---:|---:|---:|---:|---:|',
        `| floor: bare node:http (read body, 202) | ${fmt(floorRps, 0)} | ${fmt(
          over(of('node-http'), (r) => r.m.result.p50_ms),
          2,
        )} | ${fmt(
          over(of('node-http'), (r) => r.m.result.p99_ms),
          2,
        )} | — | — | — | — |`,
        `| Sabt gateway + recorder | ${fmt(sabtRps, 0)} | ${fmt(
          over(of('sabt'), (r) => r.m.result.p50_ms),
          2,
        )} | ${fmt(
          over(of('sabt'), (r) => r.m.result.p99_ms),
          2,
        )} | ${fmt(gatewayUs, 0)} | ${fmt(recorderUs, 0)} | ${fmt(rabbitUs, 1)} | ${fmt(
          over(of('sabt'), (r) => cpuPct(r.m).rabbitmq ?? Number.NaN),
          0,
        )} |`,
        '',
        `Accepted req/s ÷ the bare node:http server's: ${Math.round(ratio * 100)} %. The whole machine spent ${fmt(machineUs, 0)} µs of CPU per accepted registration (every process: the roles, RabbitMQ, PostgreSQL, wrk, the kernel), ${fmt(
          over(of('sabt'), (r) => r.m.machine_busy_pct),
          0,
        )} % of its ${cpus().length} cores busy.`,
      ]
      return {
        name: 'deployed',
        title: this.title,
        markdown: `${lines.join('\n')}\n`,
        data: { runs },
        headline: {
          accepted_rps: sabtRps.median,
          node_http_rps: floorRps.median,
          ratio_to_node_http: ratio,
          rabbitmq_us_per_registration: rabbitUs.median,
          machine_us_per_registration: machineUs.median,
          machine_busy_pct: over(of('sabt'), (r) => r.m.machine_busy_pct).median,
        },
      }
    } finally {
      await floor?.stop()
      await sabt.cleanup()
    }
  },
}
