import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { promisify } from 'node:util'
import pg from 'pg'

/**
 * The shared PostgreSQL and RabbitMQ, broken on purpose and ALWAYS brought back. Only this suite
 * may do it (../shared/SERVICES.md has the commands). `ensureServicesUp` runs after every scenario
 * and in the global teardown, whatever happened.
 */
const sh = promisify(execFile)

async function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await sh(cmd, args, { timeout: timeoutMs })
  return stdout
}

const pgVersion = (): string => readdirSync('/etc/postgresql').sort().at(-1)!

export const DEFAULT_DISK_FREE_LIMIT = '50000000'

export async function rabbitPid(): Promise<number> {
  const out = await run('rabbitmqctl', ['eval', 'list_to_integer(os:getpid()).'])
  return Number(out.trim())
}

export async function rabbitUp(): Promise<boolean> {
  try {
    await run('rabbitmqctl', ['-q', 'await_startup', '--timeout', '5'], 15_000)
    return true
  } catch {
    return false
  }
}

export async function killRabbit(): Promise<void> {
  const pid = await rabbitPid()
  process.kill(pid, 'SIGKILL')
}

export async function startRabbit(): Promise<void> {
  try {
    await run('rabbitmq-server', ['-detached'], 30_000)
  } catch {
    // already running (or starting): await_startup tells
  }
  // `-detached` returns before the Erlang node answers, and await_startup fails at once while it
  // does not: ask until it does (a killed node also replays its quorum-queue logs first).
  const until = Date.now() + 180_000
  for (;;) {
    try {
      await run('rabbitmqctl', ['await_startup', '--timeout', '60'], 90_000)
      return
    } catch (err) {
      if (Date.now() > until) throw err
      await new Promise((r) => setTimeout(r, 1000))
    }
  }
}

/** Resource alarms in force on the node (e.g. `disk`, `memory`). */
export async function alarms(): Promise<string> {
  return run('rabbitmqctl', ['eval', 'rabbit_alarm:get_alarms().'])
}

export async function stopApp(): Promise<void> {
  await run('rabbitmqctl', ['stop_app'])
}

export async function startApp(): Promise<void> {
  await run('rabbitmqctl', ['start_app'])
  await run('rabbitmqctl', ['await_startup', '--timeout', '120'], 150_000)
}

export async function setDiskFreeLimit(limit: string): Promise<void> {
  await run('rabbitmqctl', ['set_disk_free_limit', limit])
}

export async function restartPostgres(): Promise<void> {
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', 'restart'])
}

export async function postgresUp(): Promise<boolean> {
  try {
    await run('pg_isready', ['-h', '127.0.0.1', '-p', '5432', '-q'], 10_000)
    return true
  } catch {
    return false
  }
}

/** Whatever a scenario did: the broker's app running with its normal disk limit, PostgreSQL up. */
export async function ensureServicesUp(): Promise<void> {
  if (!(await rabbitUp())) {
    try {
      await startApp() // stop_app leaves the node up
    } catch {
      await startRabbit() // a killed node needs a full start
    }
  }
  await setDiskFreeLimit(DEFAULT_DISK_FREE_LIMIT).catch(() => {})
  if (!(await postgresUp())) {
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', 'start']).catch(() => {})
  }
}

const ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres'

async function adminQuery(text: string, values: unknown[] = []): Promise<pg.QueryResultRow[]> {
  const c = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5000 })
  await c.connect()
  try {
    return (await c.query(text, values)).rows
  } finally {
    await c.end()
  }
}

/** Ends every session of one database (what a failover or `pg_terminate_backend` does to Sabt). */
export async function terminateBackends(database: string): Promise<number> {
  const rows = await adminQuery(
    `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND pid <> pg_backend_pid()`,
    [database],
  )
  return rows[0]!.n as number
}

/**
 * A failover's aftermath for one database: every new session starts read-only, and the existing
 * ones are cut so that they reconnect into it. Only the scenario's own database: the shared
 * server stays as it is for everyone else.
 */
export async function setDatabaseReadOnly(database: string, on: boolean): Promise<void> {
  const name = pg.escapeIdentifier(database)
  await adminQuery(
    on
      ? `ALTER DATABASE ${name} SET default_transaction_read_only = on`
      : `ALTER DATABASE ${name} RESET default_transaction_read_only`,
  )
  await terminateBackends(database)
}
