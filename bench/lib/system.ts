import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'

/**
 * What the machine is and how busy it is, read from /proc (no dependencies): CPU seconds of a
 * process (utime + stime, its own threads), machine-wide busy %, and a gate that waits for an
 * idle machine before a measured phase, because other sessions share these 2 cores.
 */

let clkTck = 100
try {
  clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
} catch {}

/** A process's user and system CPU seconds apart (`/proc/<pid>/stat`, after comm: utime is field 11, stime 12); null when it is gone. */
export function cpuSplit(pid: number): { user: number; sys: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { user: Number(f[11]) / clkTck, sys: Number(f[12]) / clkTck }
  } catch {
    return null
  }
}

/** CPU seconds (user + system) a live process has used so far; null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  const c = cpuSplit(pid)
  return c ? c.user + c.sys : null
}

/** Machine-wide jiffies: total and idle (idle + iowait). */
export function machineTicks(): { total: number; idle: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!
  const v = line.split(/\s+/).slice(1).map(Number)
  return { total: v.reduce((a, b) => a + b, 0), idle: (v[3] ?? 0) + (v[4] ?? 0) }
}

/** Busy share of the whole machine (0–100 % of all cores) between two readings. */
export function busyPct(a: { total: number; idle: number }, b: { total: number; idle: number }): number {
  const dt = b.total - a.total
  return dt > 0 ? Math.round((1000 * (dt - (b.idle - a.idle))) / dt) / 10 : 0
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface IdleWait {
  waited_s: number
  busy_pct: number
  loadavg_1m: number
  timed_out: boolean
}

/**
 * Waits until the machine is below `maxBusyPct` busy over a 2 s window (at most `timeoutS`), so
 * other sessions' work skews a measured phase as little as possible. Says how long it waited and
 * how busy the machine still was: the state goes into the results next to each figure.
 */
export async function waitIdle(maxBusyPct = 10, timeoutS = 120, windowMs = 2000): Promise<IdleWait> {
  const started = Date.now()
  for (;;) {
    const a = machineTicks()
    await sleep(windowMs)
    const busy = busyPct(a, machineTicks())
    const waited = (Date.now() - started) / 1000
    if (busy <= maxBusyPct || waited >= timeoutS)
      return {
        waited_s: Math.round(waited),
        busy_pct: busy,
        loadavg_1m: loadavg()[0]!,
        timed_out: busy > maxBusyPct,
      }
  }
}

function run(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 15_000 })
      .trim()
      .split('\n')[0]!
  } catch {
    return null
  }
}

/** PID of the shared RabbitMQ node (beam.smp): its CPU is shared with other sessions' tests. */
export function rabbitPid(): number | null {
  const out = run('pgrep', ['-o', '-x', 'beam.smp'])
  return out ? Number(out) : null
}

export interface MachineInfo {
  cores: number
  cpu_model: string
  memory_gib: number
  kernel: string | null
  node: string
  postgresql: string | null
  rabbitmq: string | null
  wrk: string | null
  loadavg: number[]
}

export async function machineInfo(pgVersion: string | null): Promise<MachineInfo> {
  const rabbit = run('rabbitmqctl', ['-q', 'version'])
  return {
    cores: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    memory_gib: Math.round(totalmem() / 2 ** 30),
    kernel: run('uname', ['-r']),
    node: process.version,
    postgresql: pgVersion,
    rabbitmq: rabbit,
    wrk: run('sh', ['-c', 'wrk -v 2>&1 | head -1']),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
  }
}

/** CPU seconds of this process's reaped children (a load generator that has exited, e.g. wrk). */
export function reapedChildrenCpuSeconds(): number {
  const s = readFileSync('/proc/self/stat', 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return (Number(f[13]) + Number(f[14])) / clkTck
}

export interface Measured<T> {
  result: T
  wall_s: number
  /** CPU seconds per named process over the phase. */
  cpu_s: Record<string, number>
  /** Whole machine busy, % of all cores. */
  machine_busy_pct: number
  /** CPU seconds the machine spent outside the named processes (other sessions, the kernel…). */
  other_cpu_s: number
}

/**
 * Runs a measured phase: CPU seconds of each named process (and of load generators that ran as
 * reaped children, as `loadgen`), the machine's busy share, and what was spent outside them.
 */
export async function measure<T>(
  procs: Record<string, () => number | null>,
  fn: () => Promise<T>,
): Promise<Measured<T>> {
  const start = new Map<string, number>()
  for (const [k, f] of Object.entries(procs)) start.set(k, f() ?? 0)
  const last = new Map(start)
  const children0 = reapedChildrenCpuSeconds()
  const m0 = machineTicks()
  const t0 = performance.now()
  // Sample while running: a process that exits during the phase keeps its last reading.
  const sampler = setInterval(() => {
    for (const [k, f] of Object.entries(procs)) {
      const v = f()
      if (v !== null) last.set(k, v)
    }
  }, 250)
  let result: T
  try {
    result = await fn()
  } finally {
    clearInterval(sampler)
  }
  for (const [k, f] of Object.entries(procs)) {
    const v = f()
    if (v !== null) last.set(k, v)
  }
  const wall = (performance.now() - t0) / 1000
  const m1 = machineTicks()
  const cpu_s: Record<string, number> = {}
  for (const [k, v] of last) cpu_s[k] = Math.round((v - start.get(k)!) * 1000) / 1000
  const loadgen = reapedChildrenCpuSeconds() - children0
  if (loadgen > 0) cpu_s.loadgen = Math.round(((cpu_s.loadgen ?? 0) + loadgen) * 1000) / 1000
  const machineCpu = (m1.total - m0.total - (m1.idle - m0.idle)) / clkTck
  const ours = Object.values(cpu_s).reduce((a, b) => a + b, 0)
  return {
    result,
    wall_s: Math.round(wall * 100) / 100,
    cpu_s,
    machine_busy_pct: busyPct(m0, m1),
    other_cpu_s: Math.round(Math.max(0, machineCpu - ours) * 100) / 100,
  }
}

/** CPU % of one core for each process over a phase. */
export function cpuPct(m: { wall_s: number; cpu_s: Record<string, number> }): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(m.cpu_s)) out[k] = Math.round((1000 * v) / m.wall_s) / 10
  return out
}

/** CPU seconds of a process and all its live descendants (uvicorn's and Celery's workers). */
export function treeCpuSeconds(root: number): number | null {
  const kids = new Map<number, number[]>()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1])
      const list = kids.get(ppid) ?? []
      list.push(Number(d))
      kids.set(ppid, list)
    } catch {}
  }
  const own = cpuSeconds(root)
  if (own === null) return null
  let total = own
  const stack = [...(kids.get(root) ?? [])]
  while (stack.length) {
    const p = stack.pop()!
    total += cpuSeconds(p) ?? 0
    stack.push(...(kids.get(p) ?? []))
  }
  return total
}
