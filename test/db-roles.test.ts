import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey } from '../src/db/api-keys.js'
import { resetForReplay } from '../src/db/checks.js'
import { pruneLookupCodes } from '../src/db/citizen.js'
import { migrate } from '../src/db/migrate.js'
import { eraseCampaign } from '../src/db/personal-data.js'
import { createPool, type Pool } from '../src/db/pool.js'
import { syncCampaigns } from '../src/db/registrations.js'
import { DB_ROLES, type DbRoleName, setRoleLogins } from '../src/db/roles.js'
import { createLogger } from '../src/observability/logger.js'
import { buildSimulator, type Simulator } from '../src/roles/simulator/server.js'
import { type Running, startSabt } from '../src/runtime/start.js'
import {
  dropDatabase,
  dropTopology,
  registration,
  sql,
  testConfig,
  testDatabaseUrl,
  testEnv,
  uniqueName,
  waitFor,
} from './support/harness.js'

/**
 * Least privilege in the database (migrations/0008_database_roles.sql): every role runs in its
 * own process with its own PostgreSQL login, as compose runs them, and does its whole job; the
 * gateway's login cannot read a registration. The superuser only migrates and makes the key.
 */

const log = createLogger({ level: 'error' })
const env = testEnv({ SABT_ERASE_EVERY_S: '0' })
const passwords: Record<DbRoleName, string> = {
  gateway: randomBytes(18).toString('hex'),
  recorder: randomBytes(18).toString('hex'),
  checker: randomBytes(18).toString('hex'),
  status: randomBytes(18).toString('hex'),
}
function roleUrl(role: DbRoleName): string {
  const u = new URL(env.DATABASE_URL)
  u.username = DB_ROLES[role]
  u.password = passwords[role]
  return u.toString()
}
async function asRole<T>(role: DbRoleName, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: roleUrl(role) })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}
async function refused(role: DbRoleName, text: string): Promise<string | null> {
  return asRole(role, async (c) => {
    try {
      await c.query(text)
      return null
    } catch (err) {
      return (err as { code?: string }).code ?? String(err)
    }
  })
}

let sim: Simulator
let superPool: Pool
let config: ReturnType<typeof testConfig>
const running: Partial<Record<DbRoleName, Running>> = {}

beforeAll(async () => {
  sim = await buildSimulator({
    log,
    adminToken: env.SABT_ADMIN_TOKEN!,
    knobs: {
      identity: { latency_median_ms: 2, latency_p99_ms: 5 },
      mobile: { latency_median_ms: 2, latency_p99_ms: 5 },
    },
  })
  const simUrl = await sim.listen({ host: '127.0.0.1', port: 0 })
  const base = { timeout_ms: 1000, concurrency: 8, rate_per_second: 500, max_attempts: 4 }
  config = testConfig({
    retry_tiers: ['200ms', '500ms'],
    checks: {
      identity: { provider: 'identity', url: `${simUrl}/identity`, ...base },
      mobile: { provider: 'mobile', url: `${simUrl}/mobile`, ...base },
    },
    campaigns: { demo: { title: 'Demo', checks: ['identity', { name: 'mobile', after: ['identity'] }] } },
  })
  // What `sabt migrate` does, as the superuser.
  await migrate(env.DATABASE_URL, log)
  superPool = createPool(env.DATABASE_URL, { max: 2, log, name: 'test-super' })
  await syncCampaigns(superPool, config.campaigns.values())
  await setRoleLogins(superPool, passwords)
  for (const role of ['gateway', 'recorder', 'checker', 'status'] as const) {
    running[role] = await startSabt({
      roles: [role],
      env: { ...env, DATABASE_URL: roleUrl(role) },
      config,
      log,
      migrate: false,
      listen: false,
    })
    await running[role]!.mq?.waitForConnect()
  }
}, 60_000)

afterAll(async () => {
  for (const r of Object.values(running)) await r?.stop()
  await superPool?.end()
  await sim?.close()
  await dropTopology(env, config)
  await dropDatabase(env.DATABASE_URL)
})

describe('database roles (migration 0008)', () => {
  it('the gateway role cannot read registrations (or any personal data) with its database credentials', async () => {
    const who = await asRole('gateway', async (c) => (await c.query('SELECT current_user AS u')).rows[0].u)
    expect(who).toBe('sabt_gateway')
    for (const table of ['registrations', 'duplicates', 'waiting', 'check_results', 'check_cache'])
      expect(await refused('gateway', `SELECT 1 FROM ${table} LIMIT 1`), table).toBe('42501')
    expect(
      await refused(
        'gateway',
        "INSERT INTO api_keys (id, name, secret_sha256, records_per_second) VALUES ('x', 'x', '\\x00', 1)",
      ),
    ).toBe('42501')
    expect(await refused('gateway', 'SELECT * FROM api_keys')).toBeNull()
  })

  it('no role can touch what is not its own: keys only for the gateway, nothing is dropped or altered', async () => {
    for (const role of ['recorder', 'checker', 'status'] as const)
      expect(await refused(role, 'SELECT * FROM api_keys'), role).toBe('42501')
    expect(await refused('recorder', 'DELETE FROM registrations')).toBe('42501')
    expect(await refused('recorder', 'SELECT 1 FROM check_results')).toBe('42501')
    expect(await refused('status', 'DELETE FROM registrations')).toBe('42501')
    expect(await refused('status', 'DELETE FROM check_cache')).toBe('42501')
    for (const role of ['gateway', 'recorder', 'checker', 'status'] as const) {
      expect(await refused(role, 'ALTER TABLE registrations ADD COLUMN x int'), role).toBe('42501')
      expect(await refused(role, 'CREATE TABLE t (x int)'), role).toBe('42501')
      expect(await refused(role, 'TRUNCATE campaigns'), role).toBe('42501')
    }
  })

  it('each role does its own job with only its grants: single and batch intake, records, checks, verdicts, status, lookup', async () => {
    const gateway = running.gateway!
    const status = running.status!
    const { key } = await createApiKey(superPool, 'roles-test', 1000) // `sabt keys create`, as the superuser
    const person = registration()
    const one = await gateway.app.inject({ method: 'POST', url: '/v1/registrations', payload: person })
    expect(one.statusCode, one.body).toBe(202)
    const again = await gateway.app.inject({ method: 'POST', url: '/v1/registrations', payload: person })
    expect(again.statusCode).toBe(202)
    // The gateway reads the new key from PostgreSQL with its own login (reloaded every few seconds).
    const batch = await waitFor(
      async () => {
        const r = await gateway.app.inject({
          method: 'POST',
          url: '/v1/registrations/batch',
          headers: { authorization: `Bearer ${key}` },
          payload: { records: [registration(), registration()] },
        })
        return r.statusCode === 202
          ? (r.json() as { accepted: number; results: Array<{ id: string }> })
          : null
      },
      'the gateway to load the partner key with its own login',
      15_000,
      100,
    )
    expect(batch.accepted).toBe(2)
    const ids = [(one.json() as { id: string }).id, ...batch.results.map((r) => r.id)]
    // Recorded by the recorder, checked and verdicted by the checker, read by status. A verdict
    // either way is the checker's job done (the simulator rejects some generated people); a
    // record that ends `failed` or stays unverdicted would mean a refused statement.
    for (const id of ids) {
      const final = await waitFor(
        async () => {
          const r = await status.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })
          const s = r.statusCode === 200 ? (r.json() as { status: string }).status : null
          return s === 'accepted' || s === 'rejected' || s === 'failed' ? s : null
        },
        `registration ${id} verdicted`,
        20_000,
        50,
      )
      expect(final, id).not.toBe('failed')
    }
    // The second submission of the same person ended a duplicate of the first (through waiting, or
    // directly), or took the place when the first was rejected: either way the roles wrote it.
    const dupId = (again.json() as { id: string }).id
    await waitFor(
      async () =>
        (
          await sql(
            env.DATABASE_URL,
            'SELECT 1 FROM duplicates WHERE id = $1 UNION ALL SELECT 1 FROM registrations WHERE id = $1',
            [dupId],
          )
        ).length === 1,
      'the second submission kept as a duplicate',
    )
    const bearer = { authorization: `Bearer ${env.SABT_ADMIN_TOKEN}` }
    const lookup = await status.app.inject({
      method: 'POST',
      url: '/admin/lookup',
      headers: bearer,
      payload: { q: person.national_id as string },
    })
    expect(lookup.statusCode, lookup.body).toBe(200)
    expect(lookup.body).toContain(ids[0])
    const counts = await status.app.inject({
      method: 'GET',
      url: '/dashboard/fragments/counts',
      headers: bearer,
    })
    expect(counts.statusCode, counts.body).toBe(200)
  })

  it('the status role replays a check and erases a campaign’s personal data with its own grants', async () => {
    const statusPool = createPool(roleUrl('status'), { max: 1, log, name: 'test-status' })
    try {
      const [row] = await sql<{ id: string }>(
        env.DATABASE_URL,
        "SELECT id FROM registrations WHERE status IN ('accepted', 'rejected') LIMIT 1",
      )
      const required = config.campaigns.get('demo')!.checks
      expect(await resetForReplay(statusPool, row!.id, 'mobile', required)).toBe(true)
      expect(await eraseCampaign(statusPool, 'demo', { retentionDays: null, all: true })).toBeGreaterThan(0)
      // …and prunes the lookup requests no limit counts any more (0013's grant).
      expect(await pruneLookupCodes(statusPool)).toBe(0)
    } finally {
      await statusPool.end()
    }
  })

  it('migrations rerun on fresh databases, concurrently, with the cluster-wide roles already there', async () => {
    const urls = [testDatabaseUrl(uniqueName('db')), testDatabaseUrl(uniqueName('db'))]
    try {
      const applied = await Promise.all(urls.map((u) => migrate(u, log)))
      for (const a of applied) expect(a).toContain('0008_database_roles')
      expect(await migrate(urls[0]!, log)).toEqual([])
      const grants = await sql<{ grantee: string; privilege_type: string }>(
        urls[1]!,
        "SELECT grantee, privilege_type FROM information_schema.role_table_grants WHERE table_name = 'api_keys' AND grantee LIKE 'sabt\\_%'",
      )
      expect(grants).toEqual([{ grantee: 'sabt_gateway', privilege_type: 'SELECT' }])
    } finally {
      for (const u of urls) await dropDatabase(u)
    }
  })
})
