import pg from 'pg'
import type { Logger } from '../observability/logger.js'

// bigint counts come back as strings by default; Sabt's counts fit in a JS number.
pg.types.setTypeParser(20, (v) => Number(v))

export type Pool = pg.Pool

export function createPool(
  url: string,
  opts: { max: number; log: Logger; name: string; queryTimeoutMs?: number },
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max,
    application_name: opts.name,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    // A statement that hangs (database frozen, lock) fails instead of holding a batch forever.
    query_timeout: opts.queryTimeoutMs ?? 60_000,
    keepAlive: true,
    // Every statement planned for the table as it is now. Sabt's hot statements are prepared (named)
    // and run thousands of times a second; PostgreSQL's default switches a prepared statement to a
    // generic plan after five runs, costed once, for the table as it was then. Prepared while a
    // campaign's tables were still empty (its opening minute, exactly when the surge comes), that
    // plan was a sequential scan, kept while the table grew to millions of rows (bench: PostgreSQL
    // at 90 % of a core in the sustained surge, its slow statements all seq scans of registrations
    // and check_results). Planning each run costs tens of microseconds; these statements run over
    // batches of ids, so it is paid per batch.
    options: '-c plan_cache_mode=force_custom_plan',
  })
  // An idle client losing its connection (database restart) must not crash the process.
  pool.on('error', (err) =>
    opts.log.warn({ event: 'db.pool_error', err: err.message }, 'idle PostgreSQL client failed'),
  )
  // Nor one that is checked out: pg-pool listens for errors only while a client is idle, so a
  // backend terminated while a transaction holds its client (a failover, an administrator, a
  // restart) emitted an 'error' nobody handled and ended the process. The call in progress fails
  // on its own; the broken client is dropped when it is released.
  pool.on('connect', (client) => {
    client.on('error', (err) =>
      opts.log.warn({ event: 'db.client_error', err: err.message }, 'PostgreSQL connection lost mid-use'),
    )
  })
  return pool
}

/** Creates the database named in the URL if it does not exist (connecting to `postgres` to do it). */
export async function ensureDatabase(url: string): Promise<void> {
  const u = new URL(url)
  const name = decodeURIComponent(u.pathname.replace(/^\//, ''))
  if (!name) return
  const admin = new URL(url)
  admin.pathname = '/postgres'
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 })
  client.on('error', () => {}) // the query in progress fails and says why
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (!rowCount) {
      try {
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`)
      } catch (err) {
        if ((err as { code?: string }).code !== '42P04') throw err // created meanwhile by another process
      }
    }
  } finally {
    await client.end()
  }
}
