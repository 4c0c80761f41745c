/**
 * Soak: Sabt as separate processes under steady open-loop load for N minutes; samples each
 * process's RSS and event-loop delay (from its own /metrics) and prints them over time, with an
 * ASCII chart of memory. Memory must level off: the last half of the run may not keep growing.
 *
 *   npm run soak -- --minutes 10 [--rate 1500]
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Cluster } from './support/cluster.js'
import { Load } from './support/load.js'
import { ensureServicesUp } from './support/services.js'
import { dropCluster, settle } from './support/verify.js'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1500' },
    every: { type: 'string', default: '10' },
  },
})
const minutes = Number(values.minutes)
const rate = Number(values.rate)
const everyS = Number(values.every)
const ROLES = ['gateway', 'recorder', 'checker', 'simulator'] as const

interface Sample {
  t: number
  rssMb: Record<string, number>
  lagP99Ms: Record<string, number>
  accepted: number
}

function metric(text: string, name: string): number | null {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text)
  return m ? Number(m[1]) : null
}

function chart(samples: Sample[], role: string, width = 60, height = 10): string {
  const ys = samples.map((s) => s.rssMb[role] ?? 0)
  const max = Math.max(...ys, 1)
  const min = Math.min(...ys)
  const lo = Math.max(0, min - (max - min) * 0.1)
  const cols = Math.min(width, ys.length)
  const bucket = (i: number) => ys[Math.floor((i * ys.length) / cols)]!
  const rows: string[] = []
  for (let r = height - 1; r >= 0; r--) {
    const level = lo + ((max - lo) * (r + 0.5)) / height
    let line = ''
    for (let c = 0; c < cols; c++) line += bucket(c) >= level ? '█' : ' '
    rows.push(`${(lo + ((max - lo) * (r + 1)) / height).toFixed(0).padStart(5)} MB |${line}`)
  }
  rows.push(`         +${'-'.repeat(cols)}`)
  rows.push(`          0${' '.repeat(Math.max(0, cols - 8))}${minutes} min`)
  return `${role} RSS\n${rows.join('\n')}`
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' })
  await ensureServicesUp()
  const cluster = new Cluster({
    SABT_SIMULATOR_KNOBS: JSON.stringify({ identity: { latency_median_ms: 5, latency_p99_ms: 20 } }),
  })
  const samples: Sample[] = []
  let load: Load | null = null
  try {
    await cluster.prepare()
    for (const r of ROLES) await cluster.start(r, r)
    load = new Load([cluster.url('gateway')], rate)
    const started = Date.now()
    load.start()
    process.stdout.write(`soak: ${rate} req/s for ${minutes} min, sampling every ${everyS} s\n`)
    while (Date.now() - started < minutes * 60_000) {
      await new Promise((r) => setTimeout(r, everyS * 1000))
      const s: Sample = {
        t: (Date.now() - started) / 1000,
        rssMb: {},
        lagP99Ms: {},
        accepted: load.accepted().length,
      }
      for (const r of ROLES) {
        s.rssMb[r] = Math.round(cluster.rssMb(r))
        const port = r === 'simulator' ? null : cluster.procs.get(r)!.port
        if (port) {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
          s.lagP99Ms[r] = Math.round((metric(text, 'sabt_nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000)
        }
      }
      samples.push(s)
      process.stdout.write(
        `${s.t.toFixed(0).padStart(5)} s  accepted ${s.accepted}  RSS ${ROLES.map((r) => `${r} ${s.rssMb[r]} MB`).join(', ')}  loop p99 ${Object.entries(
          s.lagP99Ms,
        )
          .map(([r, v]) => `${r} ${v} ms`)
          .join(', ')}\n`,
      )
    }
    await load.stop()
    const tally = await settle(cluster, load, 'soak', 300_000)
    // Levelled off: the last quarter's mean is within 10 % (or 20 MB) of the second quarter's.
    const q = Math.floor(samples.length / 4)
    const verdicts = ROLES.map((r) => {
      const mean = (xs: Sample[]) => xs.reduce((a, s) => a + (s.rssMb[r] ?? 0), 0) / Math.max(1, xs.length)
      const mid = mean(samples.slice(q, 2 * q))
      const end = mean(samples.slice(3 * q))
      const ok = end <= Math.max(mid * 1.1, mid + 20)
      return { role: r, midMb: Math.round(mid), endMb: Math.round(end), levelled: ok }
    })
    const report = [
      `# Soak: ${rate} req/s for ${minutes} min`,
      '',
      `accepted ${tally.accepted}, recorded ${tally.recorded}, lost ${tally.lost}, duplicates ${tally.duplicates}, unsettled ${tally.unsettled}`,
      '',
      '| process | RSS, 2nd quarter (MB) | RSS, last quarter (MB) | levelled off | event-loop p99 at the end (ms) |',
      '|---|---:|---:|---|---:|',
      ...verdicts.map(
        (v) =>
          `| ${v.role} | ${v.midMb} | ${v.endMb} | ${v.levelled ? 'yes' : 'NO'} | ${samples.at(-1)?.lagP99Ms[v.role] ?? '—'} |`,
      ),
      '',
      '```',
      ...ROLES.map((r) => chart(samples, r)),
      '```',
    ].join('\n')
    mkdirSync('test-results', { recursive: true })
    writeFileSync('test-results/soak.md', `${report}\n`)
    writeFileSync(
      'test-results/soak.json',
      JSON.stringify({ rate, minutes, samples, tally, verdicts }, null, 2),
    )
    process.stdout.write(`\n${report}\n`)
    if (tally.lost > 0 || tally.duplicates > 0 || verdicts.some((v) => !v.levelled)) process.exitCode = 1
  } finally {
    await load?.stop().catch(() => {})
    await cluster.stopAll()
    await dropCluster(cluster)
  }
}

main().catch((err) => {
  process.stderr.write(`soak failed: ${(err as Error).stack}\n`)
  process.exit(1)
})
