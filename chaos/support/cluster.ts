import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { newKey } from '../../src/privacy/sealing.js'

export type RoleName = 'gateway' | 'recorder' | 'checker' | 'status' | 'simulator'

async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

export interface RoleProcess {
  name: string
  role: RoleName
  port: number
  child: ChildProcess | null
}

/** A role process that ended; `caused` when the scenario (or the harness) ended it. */
export interface Exit {
  name: string
  role: RoleName
  pid: number
  code: number | null
  signal: NodeJS.Signals | null
  at: number
  caused: boolean
}

/** Lines of a role's log that say why it died (errors first), for a failure message. */
function whyItDied(logFile: string): string {
  let text = ''
  try {
    text = readFileSync(logFile, 'utf8')
  } catch {
    return '(no log)'
  }
  const lines = text.trimEnd().split('\n')
  const errors = lines.filter((l) => /Error|Unhandled|uncaught|FATAL|fatal|panic/.test(l)).slice(-5)
  return [...errors, ...lines.slice(-5)].map((l) => `    ${l.slice(0, 400)}`).join('\n')
}

/**
 * Sabt as separate processes, started from the compiled `dist/cli.js` exactly as production runs
 * it (one role per process), sharing one database and queue prefix unique to the scenario.
 */
export class Cluster {
  readonly id = `chaos_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`
  readonly env: Record<string, string>
  readonly procs = new Map<string, RoleProcess>()
  /** Every exit of every role process, in order: a scenario fails on one it did not cause. */
  readonly exits: Exit[] = []
  /** Processes the scenario or the harness is ending on purpose (SIGKILL, stop). */
  readonly #ending = new WeakSet<ChildProcess>()
  simulatorPort = 0
  readonly logDir: string

  constructor(extra: Record<string, string> = {}) {
    this.logDir = `test-results/chaos/${this.id}`
    mkdirSync(this.logDir, { recursive: true })
    this.env = {
      ...process.env,
      NODE_ENV: 'production',
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${this.id}`,
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
      SABT_MQ_PREFIX: this.id,
      SABT_DATA_KEYS: `k1:${newKey()}`,
      SABT_INDEX_KEY: newKey(),
      SABT_ADMIN_TOKEN: randomBytes(24).toString('base64url'),
      SABT_CALLBACK_SECRET: randomBytes(24).toString('base64url'),
      SABT_CONFIG: 'chaos/chaos.yaml',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      SABT_CONFIRM_TIMEOUT_MS: '3000',
      SABT_SHUTDOWN_TIMEOUT_MS: '5000',
      // The load is driven from one address: no per-client limit.
      SABT_CLIENT_RATE: '0',
      ...extra,
    } as Record<string, string>
  }

  async prepare(): Promise<void> {
    this.simulatorPort = await freePort()
    this.env.SABT_SIMULATOR_PORT = String(this.simulatorPort)
    this.env.SABT_SIMULATOR_URL = `http://127.0.0.1:${this.simulatorPort}`
    const r = await this.#cli(['migrate'])
    if (r !== 0) throw new Error('sabt migrate failed')
  }

  #cli(args: string[]): Promise<number> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, ['dist/cli.js', ...args], {
        env: this.env,
        stdio: ['ignore', 'ignore', 'inherit'],
      })
      p.on('exit', (code) => resolve(code ?? 1))
    })
  }

  /** Starts (or restarts) a named role process; resolves when its /readyz answers 200. */
  async start(name: string, role: RoleName, extraEnv: Record<string, string> = {}): Promise<RoleProcess> {
    const existing = this.procs.get(name)
    const port = existing?.port ?? (await freePort())
    const out = createWriteStream(`${this.logDir}/${name}.log`, { flags: 'a' })
    const child = spawn(process.execPath, ['dist/cli.js', 'start', '--roles', role], {
      env: { ...this.env, PORT: String(port), ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout!.pipe(out)
    child.stderr!.pipe(out)
    const proc: RoleProcess = { name, role, port, child }
    this.procs.set(name, proc)
    child.on('exit', (code, signal) => {
      this.exits.push({
        name,
        role,
        pid: child.pid ?? 0,
        code,
        signal,
        at: Date.now(),
        caused: this.#ending.has(child),
      })
      if (proc.child === child) proc.child = null
    })
    const health =
      role === 'simulator'
        ? `http://127.0.0.1:${this.simulatorPort}/healthz`
        : `http://127.0.0.1:${port}/readyz`
    const until = Date.now() + 60_000
    for (;;) {
      if (!proc.child) throw new Error(`${name} exited while starting (see ${this.logDir}/${name}.log)`)
      try {
        const r = await fetch(health)
        if (r.status === 200) return proc
      } catch {}
      if (Date.now() > until) throw new Error(`${name} not ready in 60 s`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  url(name: string): string {
    return `http://127.0.0.1:${this.procs.get(name)!.port}`
  }

  pid(name: string): number {
    const p = this.procs.get(name)?.child?.pid
    if (!p) throw new Error(`${name} is not running`)
    return p
  }

  /** Sends a signal; one that ends the process (anything but SIGSTOP/SIGCONT) counts as caused. */
  signal(name: string, sig: NodeJS.Signals): void {
    const child = this.procs.get(name)?.child
    if (child && sig !== 'SIGSTOP' && sig !== 'SIGCONT') this.#ending.add(child)
    process.kill(this.pid(name), sig)
  }

  async kill(name: string): Promise<void> {
    const child = this.procs.get(name)?.child
    if (!child) return
    this.#ending.add(child)
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }

  /**
   * Exits the scenario did not cause: a role that crashed by itself. Each is described with its
   * exit code or signal and the lines of its log that say why.
   */
  crashes(): string[] {
    return this.exits
      .filter((e) => !e.caused)
      .map(
        (e) =>
          `${e.name} (${e.role}, pid ${e.pid}) exited by itself with ${e.signal ? `signal ${e.signal}` : `code ${e.code}`}:\n${whyItDied(`${this.logDir}/${e.name}.log`)}`,
      )
  }

  rssMb(name: string): number {
    const status = readFileSync(`/proc/${this.pid(name)}/status`, 'utf8')
    const m = /VmRSS:\s+(\d+) kB/.exec(status)
    return m ? Number(m[1]) / 1024 : 0
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.procs.values()].map(async (p) => {
        if (!p.child) return
        this.#ending.add(p.child)
        const exited = once(p.child, 'exit')
        try {
          process.kill(p.child.pid!, 'SIGCONT')
        } catch {}
        p.child.kill('SIGTERM')
        const t = setTimeout(() => p.child?.kill('SIGKILL'), 8000)
        await exited
        clearTimeout(t)
      }),
    )
  }
}
