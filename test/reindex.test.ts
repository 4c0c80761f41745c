import { afterEach, describe, expect, it } from 'vitest'
import { runReindex } from '../src/cli/reindex.js'
import { reindexAll } from '../src/db/personal-data.js'
import { createPool } from '../src/db/pool.js'
import { createLogger } from '../src/observability/logger.js'
import { newKey, parseDataKeys, Sealer } from '../src/privacy/sealing.js'
import { registration, sql, startTestSabt, type TestSabt, testEnv, waitFor } from './support/harness.js'

// docs/security.md: the index key's rotation (issue 17 item 8: how to rotate each key). Offline:
// the roles that compute indexes stopped, `sabt reindex`, then the roles with the new key.
describe('sabt reindex', () => {
  const log = createLogger({ level: 'silent' })
  const running: TestSabt[] = []
  afterEach(async () => {
    for (const s of running.splice(0).reverse()) await s.cleanup().catch(() => {})
  })

  const submit = async (s: TestSabt, body: Record<string, unknown>) => {
    const r = await s.app.inject({ method: 'POST', url: '/v1/registrations', payload: body })
    expect(r.statusCode).toBe(202)
    return r.json<{ id: string }>().id
  }
  const statusOf = async (s: TestSabt, id: string) =>
    (await s.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })).json<{ status: string }>().status

  it('recomputes every blind index with the new key in one go: after it the same person is still found, and still a duplicate', async () => {
    const env = testEnv()
    const first = await startTestSabt({ roles: ['gateway', 'recorder', 'status'], env })
    const p = registration()
    const q = registration()
    const pId = await submit(first, p)
    const q1 = await submit(first, q)
    await waitFor(async () => (await statusOf(first, pId)) === 'recorded', 'p recorded')
    await waitFor(async () => (await statusOf(first, q1)) === 'recorded', 'q recorded')
    const q2 = await submit(first, q) // waits beside q's record (not final yet)
    await waitFor(
      async () => (await sql(env.DATABASE_URL, 'SELECT 1 FROM waiting WHERE id = $1', [q2])).length === 1,
      'q again, waiting',
    )
    await sql(
      env.DATABASE_URL,
      `UPDATE registrations SET status = 'accepted', verdict_at = now() WHERE id = $1`,
      [pId],
    )
    // A cached provider answer, kept under the old key's blind index: dropped by the reindex.
    await sql(
      env.DATABASE_URL,
      `INSERT INTO check_cache (check_name, input_hash, outcome) VALUES ('identity', sha256('x'::bytea), 'passed')`,
    )
    await first.stop() // the roles that compute indexes are stopped; the database stays

    const newIndexKey = newKey()
    expect(await runReindex([], { env: { ...env, SABT_INDEX_KEY_NEW: env.SABT_INDEX_KEY! }, log })).toBe(2)
    expect(await runReindex([], { env: { ...env, SABT_INDEX_KEY_NEW: newIndexKey }, log })).toBe(0)

    const next = new Sealer(parseDataKeys(env.SABT_DATA_KEYS!, undefined, newIndexKey))
    const indexOf = async (table: string, id: string) =>
      (
        await sql<{ i: Buffer }>(
          env.DATABASE_URL,
          `SELECT national_id_index AS i FROM ${table} WHERE id = $1`,
          [id],
        )
      )[0]!.i
    expect((await indexOf('registrations', pId)).equals(next.blindIndex(p.national_id as string))).toBe(true)
    expect((await indexOf('registrations', q1)).equals(next.blindIndex(q.national_id as string))).toBe(true)
    expect((await indexOf('waiting', q2)).equals(next.blindIndex(q.national_id as string))).toBe(true)
    expect(await sql(env.DATABASE_URL, 'SELECT 1 FROM check_cache')).toHaveLength(0)

    // All or nothing: a reindex that fails midway (here: the third index) leaves every index as it was.
    const before = await sql(env.DATABASE_URL, 'SELECT id, national_id_index FROM registrations ORDER BY id')
    let made = 0
    const failing = new Sealer(parseDataKeys(env.SABT_DATA_KEYS!, undefined, newKey()))
    const blindIndex = failing.blindIndex.bind(failing)
    failing.blindIndex = (v: string) => {
      if (++made === 3) throw new Error('injected')
      return blindIndex(v)
    }
    const current = new Sealer(parseDataKeys(env.SABT_DATA_KEYS!, undefined, newIndexKey))
    const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'reindex-test' })
    try {
      await expect(reindexAll(pool, current, failing)).rejects.toThrow('injected')
    } finally {
      await pool.end()
    }
    expect(
      await sql(env.DATABASE_URL, 'SELECT id, national_id_index FROM registrations ORDER BY id'),
    ).toEqual(before)

    // The roles again, with the new key: the same person is the same person.
    const second = await startTestSabt({
      roles: ['gateway', 'recorder', 'status'],
      env: { ...env, SABT_INDEX_KEY: newIndexKey },
    })
    running.push(second)
    const again = await submit(second, p)
    await waitFor(
      async () => (await statusOf(second, again)) === 'duplicate',
      'p again: a duplicate of the accepted record',
    )
    const lookup = await second.app.inject({
      method: 'POST',
      url: '/admin/lookup',
      headers: { authorization: `Bearer ${env.SABT_ADMIN_TOKEN}` },
      payload: { q: p.national_id },
    })
    expect(lookup.json()).toMatchObject({ kind: 'records', records: [{ id: pId, status: 'accepted' }] })
  })
})
