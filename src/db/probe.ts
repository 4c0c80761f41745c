import pg from 'pg'
import { address, StartupError } from '../config/startup.js'

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
