import pg from 'pg'
import { ConfigError } from '../config/env.js'

/**
 * What a newcomer sees when something Sabt needs is not there at start: one line naming the
 * service or port, the variable that sets it, and what to do — never a stack trace. (The CLI
 * prints a ConfigError's message alone.)
 */
export class StartupError extends ConfigError {
  override name = 'StartupError'
}

/** host:port of a URL, without credentials. */
export function address(url: string, defaultPort: number): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || defaultPort}`
  } catch {
    return '(unparseable URL)'
  }
}

const NETWORK = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN'])

/**
 * Connects once to the database of DATABASE_URL (its server, when the database itself is still to
 * be created by the migration): an unreachable server or refused credentials stop the start here.
 */
export async function probeDatabase(url: string, opts: { willCreate: boolean }): Promise<void> {
  const where = address(url, 5432)
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    const e = err as Error & { code?: string }
    const code = e.code ?? (/timeout/i.test(e.message) ? 'ETIMEDOUT' : '')
    if (code === '3D000' && opts.willCreate) return // does not exist yet: the migration creates it
    if (NETWORK.has(code))
      throw new StartupError(
        `PostgreSQL at ${where} is unreachable (${code}): start PostgreSQL there, or set DATABASE_URL to one that runs`,
      )
    if (code === '28P01' || code === '28000')
      throw new StartupError(
        `PostgreSQL at ${where} refused the credentials in DATABASE_URL (${code}): fix the user or password there`,
      )
    if (code === '3D000')
      throw new StartupError(
        `PostgreSQL at ${where} has no database ${new URL(url).pathname.slice(1)} (DATABASE_URL): run \`sabt migrate\` (or start with --migrate)`,
      )
    throw new StartupError(`PostgreSQL at ${where} (DATABASE_URL) cannot be used: ${e.message}`)
  } finally {
    await client.end().catch(() => {})
  }
}

/** A port that cannot be listened on, said as what to do. */
export function listenError(err: unknown, port: number, variable: string, what: string): Error {
  const code = (err as { code?: string }).code
  if (code === 'EADDRINUSE')
    return new StartupError(
      `port ${port} (${variable}, ${what}) is already in use: stop what listens there, or set ${variable} to a free port`,
    )
  if (code === 'EACCES')
    return new StartupError(
      `port ${port} (${variable}, ${what}) needs privileges: set ${variable} above 1023`,
    )
  if (code === 'EADDRNOTAVAIL')
    return new StartupError(
      `cannot listen for ${what} on this address (HOST): set HOST to one of this machine's`,
    )
  return err as Error
}
