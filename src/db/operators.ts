import { createHash, randomBytes } from 'node:crypto'
import type { Pool } from './pool.js'

/**
 * Operator accounts (one per person), their dashboard/admin sessions and the audit of what they
 * did. Tokens and session values are 256 random bits; only their SHA-256 is stored.
 */
export interface OperatorRow {
  id: string
  name: string
  created_at: Date
  revoked_at: Date | null
}

/** Who is acting: an operator account, or the bootstrap token (id null) while no account exists. */
export interface OperatorIdentity {
  id: string | null
  name: string
}

export const BOOTSTRAP_OPERATOR = 'bootstrap'

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** `sabt_op_<id>_<secret>`: the id finds the row, the secret proves possession. */
export function newOperatorToken(): { id: string; token: string; sha256: Buffer } {
  const id = randomBytes(6).toString('hex')
  const secret = randomBytes(32).toString('base64url')
  return { id, token: `sabt_op_${id}_${secret}`, sha256: sha256(secret) }
}

export function parseOperatorToken(token: string): { id: string; secret: string } | null {
  const m = /^sabt_op_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(token)
  return m ? { id: m[1]!, secret: m[2]! } : null
}

export const OPERATOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/

export class OperatorExistsError extends Error {
  override name = 'OperatorExistsError'
}

export async function addOperator(pool: Pool, name: string): Promise<{ id: string; token: string }> {
  if (!OPERATOR_NAME.test(name)) throw new Error(`operator name ${JSON.stringify(name)}: ${OPERATOR_NAME}`)
  const t = newOperatorToken()
  try {
    await pool.query('INSERT INTO operators (id, name, token_sha256) VALUES ($1, $2, $3)', [
      t.id,
      name,
      t.sha256,
    ])
  } catch (err) {
    if ((err as { code?: string }).code === '23505')
      throw new OperatorExistsError(`an active operator named ${name} exists`)
    throw err
  }
  return { id: t.id, token: t.token }
}

export async function listOperators(pool: Pool): Promise<OperatorRow[]> {
  const r = await pool.query<OperatorRow>(
    'SELECT id, name, created_at, revoked_at FROM operators ORDER BY created_at',
  )
  return r.rows
}

/** Revokes the active account of that name and ends its sessions; false when there is none. */
export async function revokeOperator(pool: Pool, name: string): Promise<boolean> {
  const r = await pool.query<{ id: string }>(
    'UPDATE operators SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING id',
    [name],
  )
  const id = r.rows[0]?.id
  if (!id) return false
  await pool.query(
    'UPDATE operator_sessions SET ended_at = now() WHERE operator_id = $1 AND ended_at IS NULL',
    [id],
  )
  return true
}

export async function anyActiveOperator(pool: Pool): Promise<boolean> {
  const r = await pool.query('SELECT 1 FROM operators WHERE revoked_at IS NULL LIMIT 1')
  return (r.rowCount ?? 0) > 0
}

/** The active operator a token belongs to, or null (the secret compared by its hash, in SQL). */
export async function operatorByToken(pool: Pool, token: string): Promise<OperatorIdentity | null> {
  const parsed = parseOperatorToken(token)
  if (!parsed) return null
  const r = await pool.query<{ id: string; name: string }>(
    'SELECT id, name FROM operators WHERE id = $1 AND token_sha256 = $2 AND revoked_at IS NULL',
    [parsed.id, sha256(parsed.secret)],
  )
  return r.rows[0] ?? null
}

/**
 * A new session for the operator; the returned value goes in the cookie, its hash in the table. A
 * bootstrap session (operator id null) keeps the SHA-256 of the token it was opened with.
 */
export async function createSession(
  pool: Pool,
  operator: OperatorIdentity,
  ttlS: number,
  bootstrapTokenSha256: Buffer | null = null,
): Promise<string> {
  const value = randomBytes(32).toString('base64url')
  await pool.query(
    `INSERT INTO operator_sessions (id_sha256, operator_id, expires_at, bootstrap_token_sha256)
     VALUES ($1, $2, now() + make_interval(secs => $3), $4)`,
    [sha256(value), operator.id, ttlS, operator.id === null ? bootstrapTokenSha256 : null],
  )
  // Housekeeping: sessions long over are of no use to anyone.
  await pool.query("DELETE FROM operator_sessions WHERE expires_at < now() - interval '1 day'")
  return value
}

/**
 * Who a session cookie belongs to, or null when it is unknown, ended (logout), expired, its
 * operator revoked — or it is a bootstrap session and an operator account now exists, or it was
 * opened with another bootstrap token than `bootstrapTokenSha256` (SABT_ADMIN_TOKEN changed).
 */
export async function sessionOperator(
  pool: Pool,
  value: string,
  bootstrapTokenSha256: Buffer | null,
): Promise<OperatorIdentity | null> {
  const r = await pool.query<{ id: string | null; name: string | null }>(
    `SELECT s.operator_id AS id, o.name
       FROM operator_sessions s LEFT JOIN operators o ON o.id = s.operator_id
      WHERE s.id_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > now()
        AND ((o.id IS NOT NULL AND o.revoked_at IS NULL)
             OR (s.operator_id IS NULL AND s.bootstrap_token_sha256 = $2
                 AND NOT EXISTS (SELECT 1 FROM operators WHERE revoked_at IS NULL)))`,
    [sha256(value), bootstrapTokenSha256],
  )
  const row = r.rows[0]
  if (!row) return null
  return { id: row.id, name: row.name ?? BOOTSTRAP_OPERATOR }
}

export async function endSession(pool: Pool, value: string): Promise<void> {
  await pool.query(
    'UPDATE operator_sessions SET ended_at = now() WHERE id_sha256 = $1 AND ended_at IS NULL',
    [sha256(value)],
  )
}

export interface AuditEntry {
  operator: string
  action: 'lookup' | 'replay'
  client: string | null
  detail: Record<string, unknown>
}

export async function recordAudit(pool: Pool, e: AuditEntry): Promise<void> {
  await pool.query('INSERT INTO operator_audit (operator, action, client, detail) VALUES ($1, $2, $3, $4)', [
    e.operator,
    e.action,
    e.client,
    JSON.stringify(e.detail),
  ])
}
