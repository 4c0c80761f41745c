import { spawn } from 'node:child_process'
import { userInfo } from 'node:os'
import Fastify from 'fastify'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runOperators } from '../src/cli/operators.js'
import { AdminAuth } from '../src/http/auth.js'
import { errorAnswers } from '../src/http/error-answers.js'
import { createLogger } from '../src/observability/logger.js'
import { startSabt } from '../src/runtime/start.js'
import {
  dropShippedTopology,
  registration,
  startTestSabt,
  type TestSabt,
  testEnv,
  waitFor,
} from './support/harness.js'

const HOST = '127.0.0.1:8080'
const SAME_ORIGIN = { host: HOST, origin: `http://${HOST}` }

describe('operator accounts (issue 17 item 3)', () => {
  let sabt: TestSabt
  const log = createLogger({ level: 'silent' })

  beforeAll(async () => {
    sabt = await startTestSabt({ roles: ['gateway', 'recorder', 'status'], env: testEnv() })
  })
  afterAll(async () => {
    await sabt?.cleanup()
    // `sabt dead replay` below runs with the shipped configuration: drop the queues it declared
    // (its eligibility check, its 1m and 10m retry tiers) with the tests' own.
    if (sabt) await dropShippedTopology(sabt.env)
  })

  /** `sabt operators …`, in-process, with what it prints. */
  const cli = async (...args: string[]) => {
    let out = ''
    let err = ''
    const code = await runOperators(args, {
      env: sabt.env,
      log,
      out: (s) => (out += s),
      err: (s) => (err += s),
    })
    return { code, out, err }
  }
  const addOperator = async (name: string): Promise<string> => {
    const r = await cli('add', name)
    expect(r.code).toBe(0)
    const { token } = JSON.parse(r.out) as { token: string }
    expect(token).toMatch(/^sabt_op_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/)
    return token
  }
  const login = (token: string, remoteAddress = '127.0.0.1') =>
    sabt.app.inject({
      method: 'POST',
      url: '/dashboard/login',
      remoteAddress,
      headers: { ...SAME_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${encodeURIComponent(token)}`,
    })
  const cookieOf = (res: { headers: Record<string, unknown> }) =>
    String(res.headers['set-cookie']).split(';')[0]!
  const get = (headers: Record<string, string>, url = '/admin/dead') =>
    sabt.app.inject({ method: 'GET', url, headers })
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  const auditRows = async () =>
    (
      await sabt.pool!.query<{ operator: string; action: string; client: string; detail: unknown }>(
        'SELECT operator, action, client, detail FROM operator_audit ORDER BY id',
      )
    ).rows

  // docs/security.md: rotating SABT_ADMIN_TOKEN ends the old token's sessions. Fails without
  // migration 0017: the session row knew nothing of the token it was opened with.
  it('ends a bootstrap session once SABT_ADMIN_TOKEN is changed (a status role started with another token refuses it)', async () => {
    const res = await login(sabt.env.SABT_ADMIN_TOKEN!)
    expect(res.statusCode).toBe(303)
    const oldCookie = cookieOf(res)
    expect((await get({ cookie: oldCookie })).statusCode).toBe(200)
    const newToken = 'a-rotated-admin-token-0123456789abcdef'
    const rotated = await startSabt({
      roles: ['status'],
      env: { ...sabt.env, SABT_ADMIN_TOKEN: newToken },
      log,
      migrate: false,
      listen: false,
    })
    try {
      const on = (app: typeof rotated.app, cookie: string) =>
        app.inject({ method: 'GET', url: '/admin/dead', headers: { cookie } })
      expect((await on(rotated.app, oldCookie)).statusCode).toBe(401)
      const again = await rotated.app.inject({
        method: 'POST',
        url: '/dashboard/login',
        remoteAddress: '127.0.0.1',
        headers: { ...SAME_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
        payload: `token=${encodeURIComponent(newToken)}`,
      })
      expect(again.statusCode).toBe(303)
      expect((await on(rotated.app, cookieOf(again))).statusCode).toBe(200)
      // And the other way round: the new token's session is nothing to a process with the old one.
      expect((await on(sabt.app, cookieOf(again))).statusCode).toBe(401)
    } finally {
      await rotated.stop()
    }
  })

  it('lets the bootstrap token in as "bootstrap" only until the first operator account exists', async () => {
    const adminToken = sabt.env.SABT_ADMIN_TOKEN!
    expect((await get(bearer(adminToken))).statusCode).toBe(200)
    const res = await login(adminToken)
    expect(res.statusCode).toBe(303)
    const bootstrapCookie = cookieOf(res)
    expect((await get({ cookie: bootstrapCookie })).statusCode).toBe(200)

    await addOperator('alice')
    expect((await get(bearer(adminToken))).statusCode).toBe(401)
    expect((await get({ cookie: bootstrapCookie })).statusCode).toBe(401)
    expect((await login(adminToken)).statusCode).toBe(401)
    // A second active account of the same name is refused.
    expect((await cli('add', 'alice')).code).toBe(1)
    expect((await cli('add', 'not a name')).code).toBe(2)
  })

  it('signs an operator in with a personal token; revoking the operator ends the session at once', async () => {
    const token = await addOperator('dana')
    const res = await login(token)
    expect(res.statusCode).toBe(303)
    const cookie = cookieOf(res)
    expect(cookie).not.toContain(token)
    expect((await get({ cookie })).statusCode).toBe(200)
    expect((await get(bearer(token))).statusCode).toBe(200)
    expect((await get({ cookie }, '/dashboard')).statusCode).toBe(200)

    const revoked = await cli('revoke', 'dana')
    expect(revoked.code).toBe(0)
    expect((await get({ cookie })).statusCode).toBe(401)
    expect((await get(bearer(token))).statusCode).toBe(401)
    expect((await get({ cookie }, '/dashboard')).headers.location).toBe('/dashboard/login')
    expect((await login(token)).statusCode).toBe(401)

    const list = JSON.parse((await cli('list')).out) as { name: string; revoked_at: string | null }[]
    expect(list.find((o) => o.name === 'dana')?.revoked_at).not.toBeNull()
    expect(list.find((o) => o.name === 'alice')?.revoked_at).toBeNull()
    expect(JSON.stringify(list)).not.toMatch(/token|sha256/)
    expect((await cli('revoke', 'dana')).code).toBe(1)
  })

  it('ends the session at logout: the old cookie is refused afterwards', async () => {
    const token = await addOperator('bob')
    const cookie = cookieOf(await login(token))
    expect((await get({ cookie })).statusCode).toBe(200)
    const out = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/logout',
      headers: { ...SAME_ORIGIN, cookie, 'hx-request': 'true' },
    })
    expect(out.statusCode).toBe(204)
    expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0/)
    // The browser forgets the cookie; a copy of it is now worth nothing.
    expect((await get({ cookie })).statusCode).toBe(401)
    expect((await get({ cookie }, '/dashboard/fragments/dead')).statusCode).toBe(401)
  })

  it('refuses the 11th sign-in from an address after 10 wrong tokens (429 + Retry-After), even with the right token', async () => {
    const token = await addOperator('erin')
    const attacker = '198.51.100.9'
    // Ten wrong tokens from one address: five at the login form, five as bearer on the API.
    for (let i = 0; i < 5; i++) {
      expect((await login(`sabt_op_000000000000_${'x'.repeat(43)}`, attacker)).statusCode).toBe(401)
      const r = await sabt.app.inject({
        method: 'GET',
        url: '/admin/dead',
        remoteAddress: attacker,
        headers: bearer('guess-guess-guess-guess'),
      })
      expect(r.statusCode).toBe(401)
    }
    const locked = await login(token, attacker)
    expect(locked.statusCode).toBe(429)
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0)
    expect(locked.headers['set-cookie']).toBeUndefined()
    const api = await sabt.app.inject({
      method: 'GET',
      url: '/admin/dead',
      remoteAddress: attacker,
      headers: bearer(token),
    })
    expect(api.statusCode).toBe(429)
    expect(Number(api.headers['retry-after'])).toBeGreaterThan(0)
    expect(api.json()).toMatchObject({ code: 'SABT_RATE_LIMITED', errors: [{ rule: 'lockout' }] })
    // Another address is not locked out.
    expect((await login(token, '198.51.100.10')).statusCode).toBe(303)
  })

  it('audits every lookup by national id and every replay with the operator name, never the national id', async () => {
    const token = await addOperator('carol')
    const cookie = cookieOf(await login(token))
    const reg = registration()
    const nid = reg.national_id as string
    const submitted = await sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
    expect(submitted.statusCode).toBe(202)
    const id = (submitted.json() as { id: string }).id
    await waitFor(async () => {
      const r = await sabt.app.inject({
        method: 'POST',
        url: '/admin/lookup',
        headers: bearer(token),
        payload: { q: id },
      })
      return (r.json() as { kind: string }).kind === 'records'
    }, 'the registration recorded')
    const before = (await auditRows()).length

    const api = await sabt.app.inject({
      method: 'POST',
      url: '/admin/lookup',
      headers: bearer(token),
      payload: { q: nid },
    })
    expect(api.json()).toMatchObject({ kind: 'records', by: 'national_id' })
    const page = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/fragments/lookup',
      headers: {
        ...SAME_ORIGIN,
        cookie,
        'hx-request': 'true',
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: `q=${nid}`,
    })
    expect(page.statusCode).toBe(200)
    const replay = await sabt.app.inject({
      method: 'POST',
      url: '/admin/dead/replay',
      headers: bearer(token),
      payload: { check: 'identity' },
    })
    expect(replay.statusCode).toBe(200)
    const dashReplay = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/actions/replay',
      headers: {
        ...SAME_ORIGIN,
        cookie,
        'hx-request': 'true',
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: 'check=',
    })
    expect(dashReplay.statusCode).toBe(200)

    const rows = (await auditRows()).slice(before)
    expect(rows.map((r) => [r.operator, r.action])).toEqual([
      ['carol', 'lookup'],
      ['carol', 'lookup'],
      ['carol', 'replay'],
      ['carol', 'replay'],
    ])
    for (const r of rows.slice(0, 2)) {
      expect(r.detail).toMatchObject({ by: 'national_id', result: 'records', registration_ids: [id] })
      expect(r.client).toBe('127.0.0.1')
    }
    expect(rows[2]!.detail).toMatchObject({ kind: 'check', check: 'identity', replayed: 0 })
    const everything = JSON.stringify(
      (await sabt.pool!.query('SELECT * FROM operator_audit')).rows.map((r) => Object.values(r)),
    )
    expect(everything).not.toContain(nid)
    expect(everything).not.toContain(nid.slice(2, 8))
  })

  it('audits a replay from the command line as cli:<user>', async () => {
    const vars: Record<string, string> = {}
    for (const [k, v] of Object.entries(sabt.env)) if (v !== undefined) vars[k] = String(v)
    const code = await new Promise<number>((resolve) => {
      const p = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli.ts', 'dead', 'replay', '--check', 'identity'],
        {
          env: { ...process.env, ...vars },
          stdio: 'ignore',
        },
      )
      p.on('close', (c) => resolve(c ?? -1))
    })
    expect(code).toBe(0)
    const last = (await auditRows()).at(-1)!
    expect(last).toMatchObject({
      operator: `cli:${userInfo().username}`,
      action: 'replay',
      detail: { kind: 'check', check: 'identity' },
    })
  })

  it('answers 503 with Retry-After, not 500 or 401, while the sessions cannot be read (PostgreSQL away)', async () => {
    const away = new pg.Pool({
      connectionString: 'postgres://postgres@127.0.0.1:9/none',
      connectionTimeoutMillis: 500,
    })
    const app = Fastify()
    try {
      await app.register(errorAnswers)
      const guard = new AdminAuth(away, 'a-bootstrap-token-0123456789').guard()
      app.get('/admin/x', { onRequest: guard }, async () => ({ ok: true }))
      for (const headers of [
        { cookie: `sabt_admin=${'A'.repeat(43)}` },
        { authorization: 'Bearer a-bootstrap-token-0123456789' },
      ]) {
        const res = await app.inject({ method: 'GET', url: '/admin/x', headers })
        expect(res.statusCode).toBe(503)
        expect(res.headers['retry-after']).toBe('5')
        expect(res.json()).toMatchObject({ code: 'SABT_NOT_READY' })
      }
    } finally {
      await app.close()
      await away.end()
    }
  })
})
