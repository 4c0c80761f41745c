/**
 * Where the gateway's CPU goes as its batches grow (issue 11's profile): the gateway alone (or a
 * floor server) under the open-loop driver at a list of rates, each 2 s of warm-up then 10 s.
 * Prints, per rate, the CPU per request sent (warm-up included, as its CPU is) of the server (user
 * and system apart), of RabbitMQ and of the driver, and the gateway's registrations per intake message (its histogram
 * `sabt_intake_batch_size`). Not a scenario of `npm run bench`: a diagnostic, one line per rate.
 *
 *   npx tsx bench/probe-intake.ts [rates=4000,7000,10000] [connections=64] [floor]
 *   npx tsx bench/probe-intake.ts 4000,10000 64 fastify     # the bare Fastify floor instead
 */
import { openLoopRun } from './lib/load.js'
import { startFloor } from './lib/procs.js'
import { BenchSabt } from './lib/sabt.js'
import { cpuSeconds, cpuSplit, rabbitPid } from './lib/system.js'

const rates = (process.argv[2] ?? '4000,7000,10000').split(',').map(Number)
const connections = Number(process.argv[3] ?? 64)
const floor = process.argv[4]
const warmupS = 2
const durationS = 10

const sabt = await BenchSabt.create('probe')
const server = floor ? await startFloor(floor) : await sabt.start('gateway')

/** The gateway's intake batch histogram: [sum, count] (a floor has none). */
async function batches(): Promise<[number, number]> {
  if (floor) return [0, 0]
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const value = (name: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(`${name} `))
        ?.split(' ')[1] ?? 0,
    )
  return [value('sabt_intake_batch_size_sum'), value('sabt_intake_batch_size_count')]
}

const us = (seconds: number, n: number) => Math.round((seconds / n) * 1e6)
let base = 60_000_000
try {
  for (const rate of rates) {
    const rabbit = rabbitPid()
    const [c0, r0, b0] = [cpuSplit(server.pid)!, rabbit ? cpuSeconds(rabbit) : null, await batches()]
    const r = await openLoopRun({
      url: `${server.url}/v1/registrations`,
      rate,
      durationS,
      warmupS,
      connections,
      campaign: 'demo',
      base,
    })
    base += rate * (warmupS + durationS + 5)
    const [c1, r1, b1] = [cpuSplit(server.pid)!, rabbit ? cpuSeconds(rabbit) : null, await batches()]
    const n = rate * (warmupS + durationS) // every request sent, warm-up included (so is the CPU)
    const line = {
      server: floor ?? 'gateway',
      rate,
      connections,
      accepted_rps: r.accepted_rps,
      p50_ms: r.p50_ms,
      p99_ms: r.p99_ms,
      server_user_us: us(c1.user - c0.user, n),
      server_sys_us: us(c1.sys - c0.sys, n),
      rabbitmq_us: r0 !== null && r1 !== null ? us(r1 - r0, n) : null,
      driver_us: r.driver_cpu_s === null ? null : us(r.driver_cpu_s, n),
      records_per_message: b1[1] > b0[1] ? Math.round(((b1[0] - b0[0]) / (b1[1] - b0[1])) * 10) / 10 : null,
    }
    process.stdout.write(`${JSON.stringify(line)}\n`)
  }
} finally {
  if (floor) await server.stop()
  await sabt.stopAll()
  await sabt.cleanup()
}
