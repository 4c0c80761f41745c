import type pg from 'pg'
import type { Pool } from './pool.js'

/** A client inside a transaction: queries only (the helper begins, commits and releases). */
export type Tx = Pick<pg.PoolClient, 'query'>

/**
 * Runs `fn` in one transaction on one pooled client: BEGIN, COMMIT when it returns, ROLLBACK when
 * it throws, and the client released whatever happened — thrown away rather than pooled if even
 * the ROLLBACK failed (its connection is gone). The one place Sabt writes BEGIN.
 */
export async function inTransaction<T>(pool: Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => {
      broken = e
    })
    throw err
  } finally {
    client.release(broken)
  }
}
