import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from './procs.js'

const execFileP = promisify(execFile)

/**
 * Load generation. Closed loop (N connections, each sends its next request when the previous one
 * is answered: finds the ceiling) with wrk, a C load generator cheap enough to leave the cores to
 * the server. Open loop (a fixed offered rate, latency from each request's intended send time) with
 * bench/lib/open-loop.ts, because wrk and autocannon do not correct for coordinated omission
 * (see docs/decisions/0002-open-loop-driver.md).
 *
 * Every request is a distinct, valid registration: bench/registration.lua for wrk, the same shape
 * from bench/lib/bodies.ts for the open-loop driver.
 */

export interface ClosedLoopResult {
  tool: 'wrk'
  connections: number
  duration_s: number
  requests: number
  rps: number
  /** Answers that were not 2xx (wrk's "status errors"). */
  non2xx: number
  /** 2xx per second (wrk counts everything answered; the non-2xx are taken out here). */
  accepted_rps: number
  errors: number
  p50_ms: number
  p90_ms: number
  p99_ms: number
  p999_ms: number
  max_ms: number
}

/** National-id space per run: each run gets its own base, each wrk thread its own stride. */
export const PER_THREAD = 5_000_000
let nextBase = 120_000_000
export function allocateBase(threads = 2): number {
  const b = nextBase
  nextBase += PER_THREAD * Math.max(threads, 2)
  if (nextBase > 990_000_000) nextBase = 120_000_000
  return b
}

export async function hasWrk(): Promise<boolean> {
  try {
    await execFileP('wrk', ['-v'])
    return true
  } catch (err) {
    // wrk -v exits 1 after printing its version
    return (err as { code?: unknown }).code === 1
  }
}

export async function wrk(opts: {
  url: string
  connections: number
  durationS: number
  campaign: string
  base?: number
  threads?: number
  /** Path prefix of proof-of-work solution files, one per thread (bench/lib/proof-of-work.ts). */
  altcha?: string
}): Promise<ClosedLoopResult> {
  const threads = Math.min(opts.threads ?? 2, opts.connections)
  const base = opts.base ?? allocateBase(threads)
  const { stdout } = await execFileP(
    'wrk',
    [
      `-t${threads}`,
      `-c${opts.connections}`,
      `-d${opts.durationS}s`,
      '--timeout',
      '10s',
      '--latency',
      '-s',
      join(ROOT, 'bench', 'registration.lua'),
      opts.url,
      '--',
      opts.campaign,
      String(base),
      ...(opts.altcha ? [opts.altcha] : []),
    ],
    { maxBuffer: 10 * 1024 * 1024, timeout: (opts.durationS + 60) * 1000 },
  )
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '))
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`)
  const w = JSON.parse(line.slice('WRKJSON '.length)) as Record<string, number>
  const non2xx = w.err_status!
  return {
    tool: 'wrk',
    connections: opts.connections,
    duration_s: w.duration_s!,
    requests: w.requests!,
    rps: Math.round(w.rps!),
    non2xx,
    accepted_rps: Math.round((w.requests! - non2xx) / w.duration_s!),
    errors: w.err_connect! + w.err_read! + w.err_write! + w.err_timeout!,
    p50_ms: w.p50_ms!,
    p90_ms: w.p90_ms!,
    p99_ms: w.p99_ms!,
    p999_ms: w.p999_ms!,
    max_ms: w.max_ms!,
  }
}

/** Runs the open-loop driver in its own process; returns its result and its CPU seconds. */
export async function openLoopRun(
  opts: import('./open-loop.js').OpenLoopOptions,
  onStart?: (pid: number) => void,
): Promise<import('./open-loop.js').OpenLoopResult & { driver_cpu_s: number | null }> {
  const { spawnNode } = await import('./procs.js')
  const p = spawnNode('open-loop', [
    '--import',
    'tsx',
    join(ROOT, 'bench', 'lib', 'open-loop.ts'),
    JSON.stringify(opts),
  ])
  onStart?.(p.pid)
  let out = ''
  p.child.stdout!.on('data', (c: Buffer) => {
    out += c.toString()
  })
  let cpu: number | null = null
  const poll = setInterval(() => {
    cpu = p.cpu() ?? cpu
  }, 200)
  const code = await p.exited
  clearInterval(poll)
  if (code !== 0) throw new Error(`open-loop driver failed (${code}); see bench/results/logs/open-loop.log`)
  const line = out.trim().split('\n').pop()!
  return { ...(JSON.parse(line) as import('./open-loop.js').OpenLoopResult), driver_cpu_s: cpu }
}
