import { createHash, randomBytes } from 'node:crypto'
import type { Pool } from './pool.js'

export interface ApiKeyRow {
  id: string
  name: string
  secret_sha256: Buffer
  records_per_second: number
  created_at: Date
  revoked_at: Date | null
}

/** `sabt_<id>_<secret>`: the id finds the row, the secret (256 bits) proves possession. */
export function newApiKey(): { id: string; secret: string; key: string; sha256: Buffer } {
  const id = randomBytes(6).toString('hex')
  const secret = randomBytes(32).toString('base64url')
  return { id, secret, key: `sabt_${id}_${secret}`, sha256: createHash('sha256').update(secret).digest() }
}

export function parseApiKey(key: string): { id: string; secret: string } | null {
  const m = /^sabt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(key)
  return m ? { id: m[1]!, secret: m[2]! } : null
}

export async function createApiKey(
  pool: Pool,
  name: string,
  recordsPerSecond: number,
): Promise<{ id: string; key: string }> {
  const k = newApiKey()
  await pool.query(
    'INSERT INTO api_keys (id, name, secret_sha256, records_per_second) VALUES ($1, $2, $3, $4)',
    [k.id, name, k.sha256, recordsPerSecond],
  )
  return { id: k.id, key: k.key }
}

export async function listApiKeys(pool: Pool): Promise<Omit<ApiKeyRow, 'secret_sha256'>[]> {
  const r = await pool.query<ApiKeyRow>(
    'SELECT id, name, records_per_second, created_at, revoked_at FROM api_keys ORDER BY created_at',
  )
  return r.rows
}

export async function activeApiKeys(pool: Pool): Promise<ApiKeyRow[]> {
  const r = await pool.query<ApiKeyRow>('SELECT * FROM api_keys WHERE revoked_at IS NULL')
  return r.rows
}

export async function revokeApiKey(pool: Pool, id: string): Promise<boolean> {
  const r = await pool.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [
    id,
  ])
  return (r.rowCount ?? 0) > 0
}
