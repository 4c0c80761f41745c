import { afterEach, describe, expect, it } from 'vitest'
import { migrate } from '../src/db/migrate.js'
import { lsnBytes } from '../src/db/replica.js'
import { createLogger } from '../src/observability/logger.js'
import {
  dropDatabase,
  registration,
  sql,
  startTestSabt,
  type TestSabt,
  testDatabaseUrl,
  testEnv,
  uniqueName,
  waitFor,
} from './support/harness.js'

/**
 * The status role reading through a streaming replica (DATABASE_READ_URL) that has not caught up:
 * here a second database with the schema and none of the rows, standing in for a replica that is
 * behind (the real streaming replica is in npm run test:deploy).
 */
describe('status reads through a replica', () => {
  let s: TestSabt | null = null
  let replicaUrl = ''
  afterEach(async () => {
    await s?.cleanup()
    s = null
    if (replicaUrl) await dropDatabase(replicaUrl).catch(() => {})
  })

  it('answers a registration the replica does not have yet from the primary: recorded, never queued or 404', async () => {
    replicaUrl = testDatabaseUrl(uniqueName('replica'))
    await migrate(replicaUrl, createLogger({ level: 'error' }))
    const env = testEnv({ DATABASE_READ_URL: replicaUrl })
    s = await startTestSabt({ roles: ['gateway', 'recorder', 'status'], env })
    expect(s.readPool).not.toBe(s.pool)
    const posted = await s.app.inject({ method: 'POST', url: '/v1/registrations', payload: registration() })
    expect(posted.statusCode).toBe(202)
    const { id } = posted.json() as { id: string }
    await waitFor(
      async () =>
        (await sql(env.DATABASE_URL, 'SELECT 1 FROM registrations WHERE id = $1', [id])).length === 1,
      'the record on the primary',
    )
    expect(await sql(replicaUrl, 'SELECT 1 FROM registrations WHERE id = $1', [id])).toHaveLength(0)
    const res = await s.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ id, campaign: 'demo' })
    expect(['recorded', 'verifying', 'accepted', 'rejected', 'failed']).toContain(res.json().status)
  })

  it('answers from the primary while the replica is unreachable', async () => {
    const env = testEnv({ DATABASE_READ_URL: 'postgres://postgres@127.0.0.1:9/nowhere' })
    s = await startTestSabt({ roles: ['gateway', 'recorder', 'status'], env })
    const posted = await s.app.inject({ method: 'POST', url: '/v1/registrations', payload: registration() })
    const { id } = posted.json() as { id: string }
    await waitFor(
      async () =>
        (await sql(env.DATABASE_URL, 'SELECT 1 FROM registrations WHERE id = $1', [id])).length === 1,
      'the record on the primary',
    )
    const res = await s.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json()).toMatchObject({ id })
  })

  it('shows the replica on the dashboard (a read database that is not a standby says so), and no section without one', async () => {
    replicaUrl = testDatabaseUrl(uniqueName('replica'))
    await migrate(replicaUrl, createLogger({ level: 'error' }))
    s = await startTestSabt({ roles: ['status'], env: testEnv({ DATABASE_READ_URL: replicaUrl }) })
    const auth = { authorization: `Bearer ${s.env.SABT_ADMIN_TOKEN}` }
    const page = await s.app.inject({ method: 'GET', url: '/dashboard', headers: auth })
    expect(page.body).toContain('hx-get="/dashboard/fragments/replica"')
    const frag = await s.app.inject({ method: 'GET', url: '/dashboard/fragments/replica', headers: auth })
    expect(frag.statusCode).toBe(200)
    expect(frag.body).toContain('is not a standby')
    await s.cleanup()
    s = await startTestSabt({ roles: ['status'] })
    const plain = await s.app.inject({ method: 'GET', url: '/dashboard', headers: auth })
    expect(plain.body).not.toContain('fragments/replica')
    expect(lsnBytes('0/0')).toBe(0)
    expect(lsnBytes('16/B374D848') - lsnBytes('16/B374D000')).toBe(0x848)
    expect(lsnBytes('1/0')).toBe(2 ** 32)
  })
})
