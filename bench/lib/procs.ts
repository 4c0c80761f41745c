import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { cpuSeconds } from './system.js'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const LOG_DIR = join(ROOT, 'bench', 'results', 'logs')

/** A process the bench started: its pid, CPU accounting, and a stop that waits for it to exit. */
export interface Proc {
  name: string
  pid: number
  child: ChildProcess
  cpu(): number | null
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>
  exited: Promise<number | null>
}

export interface SpawnOptions {
  env?: Record<string, string>
  /** Node flags (e.g. --cpu-prof). */
  nodeArgs?: string[]
  cwd?: string
}

/** Starts `node <args>`; stdout/stderr go to bench/results/logs/<name>.log. */
export function spawnNode(name: string, args: string[], opts: SpawnOptions = {}): Proc {
  return spawnCmd(name, process.execPath, [...(opts.nodeArgs ?? []), ...args], opts)
}

export function spawnCmd(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Proc {
  mkdirSync(LOG_DIR, { recursive: true })
  const out = createWriteStream(join(LOG_DIR, `${name}.log`), { flags: 'a' })
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout!.pipe(out)
  child.stderr!.pipe(out)
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  const pid = child.pid!
  return {
    name,
    pid,
    child,
    cpu: () => cpuSeconds(pid),
    exited,
    async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill(signal)
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      await exited
      clearTimeout(t)
    },
  }
}

/** Polls a URL until it answers 200 (or the process exits, or time runs out). */
export async function waitReady(url: string, proc?: Proc, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs
  let dead = false
  proc?.exited.then(() => {
    dead = true
  })
  for (;;) {
    if (dead)
      throw new Error(`${proc!.name} exited before it was ready (see bench/results/logs/${proc!.name}.log)`)
    try {
      const r = await fetch(url)
      await r.arrayBuffer()
      if (r.status === 200) return
    } catch {}
    if (Date.now() > until) throw new Error(`timed out waiting for ${url}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** CPU seconds used by each process between two snapshots. */
export class CpuMeter {
  readonly #start = new Map<string, number>()
  constructor(readonly procs: Record<string, () => number | null>) {
    for (const [k, f] of Object.entries(procs)) this.#start.set(k, f() ?? 0)
  }
  /** CPU seconds per process since construction. */
  read(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [k, f] of Object.entries(this.procs)) {
      const now = f()
      if (now !== null) out[k] = Math.round((now - this.#start.get(k)!) * 1000) / 1000
    }
    return out
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  return new Promise((resolvePort, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolvePort(port))
    })
  })
}

/** Waits until something accepts TCP connections on the port. */
export async function waitPort(port: number, proc?: Proc, timeoutMs = 30_000): Promise<void> {
  const { connect } = await import('node:net')
  const until = Date.now() + timeoutMs
  for (;;) {
    if (proc && proc.child.exitCode !== null) throw new Error(`${proc.name} exited before listening`)
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => {
        s.destroy()
        r(true)
      })
      s.once('error', () => r(false))
    })
    if (ok) return
    if (Date.now() > until) throw new Error(`timed out waiting for port ${port}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Starts a floor server (bench/floors/<name>.ts) on a free port. */
export async function startFloor(name: string): Promise<Proc & { url: string }> {
  const port = await freePort()
  const p = spawnNode(`floor-${name}`, ['--import', 'tsx', join(ROOT, 'bench', 'floors', `${name}.ts`)], {
    env: { PORT: String(port), NODE_ENV: 'production' },
  })
  await waitPort(port, p)
  return Object.assign(p, { url: `http://127.0.0.1:${port}` })
}
