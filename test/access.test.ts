import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApiKey, revokeApiKey } from '../src/db/api-keys.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { registration, sql, waitFor } from './support/harness.js'

// Who may do what: the public intake is open; batch intake needs a partner key (stored hashed,
// rate-limited per key); every admin endpoint needs the admin token.
describe('access', () => {
  let s: ChecksSystem
  let key: string
  let keyId: string
  let slowKey: string
  beforeAll(async () => {
    s = await startChecksSystem({ env: { SABT_BATCH_MAX_RECORDS: '10' } })
    const k = await createApiKey(s.sabt.pool!, 'partner-a', 1000)
    key = k.key
    keyId = k.id
    slowKey = (await createApiKey(s.sabt.pool!, 'partner-slow', 10)).key
    await waitFor(
      async () => {
        const r = await batch([registration()], { authorization: `Bearer ${key}` })
        return r.statusCode === 202
      },
      'the gateway to load the keys',
      15_000,
      200,
    )
  })
  afterAll(async () => {
    await s?.cleanup()
  })

  const batch = (records: unknown[], headers: Record<string, string> = {}) =>
    s.sabt.app.inject({ method: 'POST', url: '/v1/registrations/batch', payload: { records }, headers })

  function expect401(res: { statusCode: number; json: () => unknown }, rule: string) {
    expect(res.statusCode).toBe(401)
    expect(res.json()).toMatchObject({
      code: 'SABT_UNAUTHORIZED',
      errors: [{ field: 'authorization', rule }],
    })
  }

  it('takes a single registration with no credential at all', async () => {
    const res = await s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: registration() })
    expect(res.statusCode).toBe(202)
  })

  it('refuses batch intake without a key, with a wrong one, or a malformed one', async () => {
    expect401(await batch([registration()]), 'api_key')
    expect401(await batch([registration()], { authorization: `Bearer ${key.slice(0, -2)}xx` }), 'api_key')
    expect401(await batch([registration()], { authorization: 'Bearer sabt_000000000000_nope' }), 'api_key')
    expect401(await batch([registration()], { 'x-api-key': 'garbage' }), 'api_key')
  })

  it('takes batch intake with a key, as a bearer token or X-Api-Key', async () => {
    expect(
      (await batch([registration(), registration()], { authorization: `Bearer ${key}` })).statusCode,
    ).toBe(202)
    expect((await batch([registration()], { 'x-api-key': key })).statusCode).toBe(202)
  })

  it('stores only a hash of the key', async () => {
    const rows = await sql<{ row: string }>(s.sabt.env.DATABASE_URL, 'SELECT a::text AS row FROM api_keys a')
    // sabt_<12 hex>_<secret>: the secret is base64url, so it may itself hold '_'
    const secret = key.slice('sabt_'.length + 12 + 1)
    expect(secret).toHaveLength(43)
    for (const r of rows) expect(r.row).not.toContain(secret)
    expect(rows.length).toBe(2)
  })

  it('limits each key to its records per second: 429 with Retry-After past it', async () => {
    const ten = Array.from({ length: 10 }, () => registration())
    expect((await batch(ten, { authorization: `Bearer ${slowKey}` })).statusCode).toBe(202)
    // The budget is spent: what 10/s earned since goes in, the rest of a batch is answered 429 one
    // by one (207); once nothing is left, the whole request is 429.
    let res = await batch(ten, { authorization: `Bearer ${slowKey}` })
    for (let i = 0; i < 5 && res.statusCode === 207; i++) {
      const body = res.json() as { accepted: number; results: { status: number }[] }
      expect(body.accepted).toBeLessThan(10)
      expect(body.results.at(-1)!.status).toBe(429)
      res = await batch(ten, { authorization: `Bearer ${slowKey}` })
    }
    expect(res.statusCode).toBe(429)
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(res.json()).toMatchObject({ code: 'SABT_RATE_LIMITED', errors: [{ rule: 'rate_limit' }] })
    // another key is not slowed by it
    expect((await batch([registration()], { authorization: `Bearer ${key}` })).statusCode).toBe(202)
  })

  it('refuses a revoked key once the gateway has reloaded its keys', async () => {
    expect(await revokeApiKey(s.sabt.pool!, keyId)).toBe(true)
    await waitFor(
      async () => (await batch([registration()], { authorization: `Bearer ${key}` })).statusCode === 401,
      'the revocation to apply',
      15_000,
      200,
    )
  })

  it('refuses every admin endpoint without the admin token, or with a wrong one', async () => {
    const endpoints: { method: 'GET' | 'POST' | 'PUT'; url: string; payload?: object }[] = [
      { method: 'GET', url: '/admin/dead' },
      { method: 'POST', url: '/admin/dead/replay', payload: {} },
    ]
    for (const e of endpoints) {
      for (const headers of [
        {},
        { authorization: 'Bearer wrong-token-wrong-token' },
        { authorization: s.adminToken },
      ]) {
        const res = await s.sabt.app.inject({ ...e, headers })
        expect({ url: e.url, status: res.statusCode }).toEqual({ url: e.url, status: 401 })
        expect(res.json()).toMatchObject({
          code: 'SABT_UNAUTHORIZED',
          errors: [{ field: 'authorization', rule: 'admin_token' }],
        })
      }
      const ok = await s.sabt.app.inject({ ...e, headers: { authorization: `Bearer ${s.adminToken}` } })
      expect({ url: e.url, status: ok.statusCode }).toEqual({ url: e.url, status: 200 })
    }
    // The simulator's knobs are admin too.
    for (const [method, path] of [
      ['GET', '/admin/providers'],
      ['PUT', '/admin/providers/identity'],
      ['GET', '/admin/stats'],
      ['POST', '/admin/stats/reset'],
    ] as const) {
      const res = await fetch(`${s.simUrl}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: method === 'PUT' ? '{"outage": true}' : method === 'POST' ? '{}' : undefined,
      })
      expect({ path, status: res.status }).toEqual({ path, status: 401 })
    }
    expect((await s.stats()).identity).toBeDefined() // with the token it works
  })
})
