import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSession } from '../src/db/operators.js'
import { createLogger } from '../src/observability/logger.js'
import { buildSimulator, type Simulator } from '../src/roles/simulator/server.js'
import { type Running, startSabt } from '../src/runtime/start.js'
import {
  captureLogger,
  registration,
  startTestSabt,
  type TestSabt,
  testConfig,
  testEnv,
  waitFor,
} from './support/harness.js'

/** Every route of an app, with its methods, from Fastify's own route tree. */
function routesOf(app: FastifyInstance): { path: string; methods: string[] }[] {
  const out: { path: string; methods: string[] }[] = []
  const stack: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:[│ ] {3})*)[├└]── (.+?) \(([A-Z, ]+)\)$/.exec(line)
    if (!m) continue
    const depth = m[1]!.length / 4
    stack.length = depth
    stack.push(m[2]!)
    out.push({ path: stack.join(''), methods: m[3]!.split(', ').filter((x) => x !== 'HEAD') })
  }
  return out
}

const HOST = '127.0.0.1:8080'
const SAME_ORIGIN = { host: HOST, origin: `http://${HOST}` }

describe('admin authentication', () => {
  let sabt: TestSabt
  let sim: Simulator
  let token: string
  beforeAll(async () => {
    // Wrong tokens are tried on every route below: more than the sign-in lockout allows.
    sabt = await startTestSabt({
      roles: ['gateway', 'status'],
      env: testEnv({ SABT_LOGIN_MAX_FAILURES: '1000' }),
    })
    token = sabt.env.SABT_ADMIN_TOKEN!
    sim = await buildSimulator({ log: createLogger({ level: 'silent' }), adminToken: token })
  })
  afterAll(async () => {
    await sim?.close()
    await sabt?.cleanup()
  })

  const login = async () => {
    const res = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/login',
      headers: { ...SAME_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${encodeURIComponent(token)}`,
    })
    expect(res.statusCode).toBe(303)
    return String(res.headers['set-cookie']).split(';')[0]!
  }

  it('refuses every admin and dashboard endpoint without credentials, with a wrong token or a forged cookie', async () => {
    const guarded = routesOf(sabt.app).filter(
      (r) =>
        (r.path.startsWith('/admin') || r.path.startsWith('/dashboard')) &&
        r.path !== '/dashboard/login' &&
        !r.path.includes('*'), // the static assets (/dashboard/assets/*): htmx, uPlot, our CSS and script
    )
    expect(guarded.map((r) => r.path)).toEqual(
      expect.arrayContaining([
        '/admin/dead',
        '/admin/dead/replay',
        '/admin/live',
        '/admin/lookup',
        '/dashboard',
        '/dashboard/series',
        '/dashboard/fragments/dead',
        '/dashboard/fragments/lookup',
        '/dashboard/actions/replay',
        '/dashboard/logout',
      ]),
    )
    const credentials: [string, Record<string, string>][] = [
      ['none', {}],
      ['wrong bearer', { authorization: 'Bearer not-the-token-0123456789' }],
      ['forged cookie', { cookie: `sabt_admin=${'A'.repeat(43)}` }],
      ['a session of no one', { cookie: `sabt_admin=${randomBytes(32).toString('base64url')}` }],
      ['the token as the cookie', { cookie: `sabt_admin=${token}` }],
    ]
    let tried = 0
    for (const r of guarded)
      for (const method of r.methods)
        for (const [what, headers] of credentials) {
          const res = await sabt.app.inject({
            method: method as 'GET',
            url: r.path.replace(':name', 'identity'),
            headers: { ...SAME_ORIGIN, 'hx-request': 'true', ...headers },
            ...(method === 'GET' ? {} : { payload: {} }),
          })
          tried++
          if (r.path === '/dashboard' && method === 'GET') {
            // The page sends a browser to the login form, and shows nothing.
            expect({ what, status: res.statusCode, to: res.headers.location }).toEqual({
              what,
              status: 303,
              to: '/dashboard/login',
            })
            expect(res.body).not.toContain('Dead letters')
          } else
            expect({ what, route: `${method} ${r.path}`, status: res.statusCode }).toEqual({
              what,
              route: `${method} ${r.path}`,
              status: 401,
            })
        }
    expect(tried).toBeGreaterThanOrEqual(60)

    // The simulator's knobs and stats too.
    for (const [method, url] of [
      ['GET', '/admin/providers'],
      ['PUT', '/admin/providers/identity'],
      ['GET', '/admin/stats'],
      ['POST', '/admin/stats/reset'],
    ] as const) {
      const res = await sim.inject({ method, url, ...(method === 'GET' ? {} : { payload: {} }) })
      expect({ url, status: res.statusCode }).toEqual({ url, status: 401 })
    }
    // Public endpoints stay open.
    expect(
      (await sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: registration() }))
        .statusCode,
    ).toBe(202)
    expect((await sabt.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200)
    expect((await sabt.app.inject({ method: 'GET', url: '/dashboard/login' })).statusCode).toBe(200)
    const asset = await sabt.app.inject({ method: 'GET', url: '/dashboard/assets/htmx.min.js' })
    expect(asset.statusCode).toBe(200)
    expect(asset.body).toContain('htmx')
    expect((await sabt.app.inject({ method: 'GET', url: '/dashboard/assets/htmx.esm.js' })).statusCode).toBe(
      404,
    ) // only the listed files are served
  })

  it('trades the admin token for an HttpOnly, SameSite=Strict session cookie holding no token', async () => {
    const wrong = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/login',
      headers: { ...SAME_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'token=guess-guess-guess-guess',
    })
    expect(wrong.statusCode).toBe(401)
    expect(wrong.headers['set-cookie']).toBeUndefined()
    const crossSite = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/login',
      headers: {
        host: HOST,
        origin: 'https://evil.example',
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: `token=${encodeURIComponent(token)}`,
    })
    expect(crossSite.statusCode).toBe(403)
    expect(crossSite.headers['set-cookie']).toBeUndefined()

    const ok = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/login',
      headers: { ...SAME_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token=${encodeURIComponent(token)}`,
    })
    expect(ok.statusCode).toBe(303)
    expect(ok.headers.location).toBe('/dashboard')
    const setCookie = String(ok.headers['set-cookie'])
    expect(setCookie).toMatch(/^sabt_admin=[A-Za-z0-9_-]{43};/)
    expect(setCookie).toContain('HttpOnly')
    expect(setCookie).toContain('SameSite=Strict')
    expect(setCookie).toContain('Path=/')
    expect(setCookie).not.toContain(token)

    const cookie = await login()
    const page = await sabt.app.inject({ method: 'GET', url: '/dashboard', headers: { cookie } })
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toMatch(/text\/html/)
    expect(page.body).toContain('Dead letters')
    expect(page.headers['content-security-policy']).toContain("default-src 'self'")
    // The admin JSON endpoints take the cookie as well as the bearer token.
    expect(
      (await sabt.app.inject({ method: 'GET', url: '/admin/dead', headers: { cookie } })).statusCode,
    ).toBe(200)
    const live = await sabt.app.inject({ method: 'GET', url: '/admin/live', headers: { cookie } })
    expect(live.statusCode).toBe(200)
    expect(Object.keys(live.json())).toEqual(
      expect.arrayContaining(['series', 'queues', 'providers', 'processes', 'counts']),
    )
    // A tampered cookie is refused.
    const value = cookie.slice('sabt_admin='.length)
    const tampered = `sabt_admin=${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`
    expect(
      (await sabt.app.inject({ method: 'GET', url: '/admin/dead', headers: { cookie: tampered } }))
        .statusCode,
    ).toBe(401)
    // An expired one too.
    const old = await createSession(sabt.pool!, { id: null, name: 'bootstrap' }, -60)
    expect(
      (await sabt.app.inject({ method: 'GET', url: '/admin/dead', headers: { cookie: `sabt_admin=${old}` } }))
        .statusCode,
    ).toBe(401)
  })

  it('refuses a cookie-authenticated change that does not come from the dashboard (CSRF), not a bearer one', async () => {
    const cookie = await login()
    const replay = (headers: Record<string, string>) =>
      sabt.app.inject({
        method: 'POST',
        url: '/admin/dead/replay',
        headers: { host: HOST, ...headers },
        payload: {},
      })
    // No HX-Request header: a plain cross-site form could have sent it.
    const noHx = await replay({ cookie, origin: `http://${HOST}` })
    expect(noHx.statusCode).toBe(403)
    expect(noHx.json().code).toBe('SABT_FORBIDDEN')
    // Another origin, or none at all.
    expect((await replay({ cookie, 'hx-request': 'true', origin: 'http://evil.example' })).statusCode).toBe(
      403,
    )
    expect((await replay({ cookie, 'hx-request': 'true' })).statusCode).toBe(403)
    expect(
      (await replay({ cookie, 'hx-request': 'true', referer: 'http://evil.example/x' })).statusCode,
    ).toBe(403)
    // From the dashboard itself: through.
    expect((await replay({ cookie, 'hx-request': 'true', origin: `http://${HOST}` })).statusCode).toBe(200)
    expect(
      (await replay({ cookie, 'hx-request': 'true', referer: `http://${HOST}/dashboard` })).statusCode,
    ).toBe(200)
    // The bearer token needs no such headers (a browser never adds it by itself).
    expect((await replay({ authorization: `Bearer ${token}` })).statusCode).toBe(200)
    // The dashboard's own form actions follow the same rule.
    const lookup = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/fragments/lookup',
      headers: { host: HOST, cookie, origin: 'http://evil.example', 'hx-request': 'true' },
      payload: { q: '0499370899' },
    })
    expect(lookup.statusCode).toBe(403)

    // Signing out clears the cookie.
    const out = await sabt.app.inject({
      method: 'POST',
      url: '/dashboard/logout',
      headers: { ...SAME_ORIGIN, cookie, 'hx-request': 'true' },
    })
    expect(out.statusCode).toBe(204)
    expect(String(out.headers['set-cookie'])).toMatch(/^sabt_admin=;.*Max-Age=0/)
    expect(out.headers['hx-redirect']).toBe('/dashboard/login')
  })
})

describe('live numbers across processes', () => {
  let sim: Simulator
  let workers: Running | null = null
  let status: TestSabt
  const env = testEnv()
  const token = env.SABT_ADMIN_TOKEN!
  const admin = { authorization: `Bearer ${token}` }

  beforeAll(async () => {
    sim = await buildSimulator({
      log: createLogger({ level: 'silent' }),
      adminToken: token,
      knobs: { identity: { latency_median_ms: 5, latency_p99_ms: 20 } },
    })
    const simUrl = await sim.listen({ host: '127.0.0.1', port: 0 })
    const config = testConfig({
      retry_tiers: ['200ms', '1s'],
      checks: { identity: { provider: 'identity', url: `${simUrl}/identity`, rate_per_second: 200 } },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
    })
    // Two runtimes, as two processes would be: the status role alone, the others together.
    status = await startTestSabt({ roles: ['status'], env, config })
    workers = await startSabt({
      roles: ['gateway', 'recorder', 'checker'],
      env,
      config,
      log: createLogger({ level: env.LOG_LEVEL }),
      listen: false,
    })
    await workers.mq!.waitForConnect()
  })
  afterAll(async () => {
    await workers?.stop()
    await status?.cleanup()
    await sim?.close()
  })

  const live = async () =>
    (await status.app.inject({ method: 'GET', url: '/admin/live', headers: admin })).json<{
      series: {
        accepted_req: (number | null)[]
        recorded: (number | null)[]
        checks: Record<string, (number | null)[]>
      }
      providers: {
        check: string
        checkers: number
        calls_per_s: number | null
        p50_ms: number | null
        circuit: string
      }[]
      queues: { name: string; messages: number | null; consumers: number | null }[]
      intake: { gateways: number; registrations_per_confirm: number | null; batch_p50: number | null }
      processes: { roles: string[]; stale: boolean }[]
      counts: { total: Record<string, number> }
    }>()

  it('the status role, in a process of its own, shows the gateway’s, recorder’s and checker’s numbers', async () => {
    expect(status.live).not.toBeNull()
    // 10 one after the other, then 20 at once: group commit puts those into fewer messages.
    for (let i = 0; i < 10; i++) {
      const res = await workers!.app.inject({
        method: 'POST',
        url: '/v1/registrations',
        payload: registration(),
      })
      expect(res.statusCode).toBe(202)
    }
    const together = await Promise.all(
      Array.from({ length: 20 }, () =>
        workers!.app.inject({ method: 'POST', url: '/v1/registrations', payload: registration() }),
      ),
    )
    expect(together.map((r) => r.statusCode)).toEqual(Array(20).fill(202))
    const got = await waitFor(async () => {
      const l = await live()
      const done = (l.counts.total.accepted ?? 0) + (l.counts.total.rejected ?? 0)
      return (
        done === 30 &&
        l.series.accepted_req.some((v) => (v ?? 0) > 0) &&
        l.series.recorded.some((v) => (v ?? 0) > 0) &&
        l.series.checks.identity!.some((v) => (v ?? 0) > 0) &&
        l.providers[0]!.p50_ms !== null &&
        l.intake.registrations_per_confirm !== null &&
        l
      )
    }, 'the other process’s numbers in the status role')
    // 30 registrations in fewer than 30 confirms.
    expect(got.intake.gateways).toBe(1)
    expect(got.intake.registrations_per_confirm!).toBeGreaterThan(1)
    expect(got.intake.batch_p50).not.toBeNull()
    expect(got.processes.map((p) => p.roles.join('+')).sort()).toEqual(['gateway+recorder+checker', 'status'])
    expect(got.providers[0]).toMatchObject({ check: 'identity', checkers: 1, circuit: 'closed' })
    expect(got.queues.map((q) => q.name)).toEqual([
      'intake',
      'identity',
      'callback',
      'retry 200ms',
      'retry 1s',
      'dead letters to book',
      'dead letters',
      'intake dead letters',
    ])
    expect(got.queues.find((q) => q.name === 'intake')).toMatchObject({ messages: 0, consumers: 1 })
    // The status role exports what it sampled.
    const metrics = (await status.app.inject({ method: 'GET', url: '/metrics' })).body
    expect(metrics).toMatch(new RegExp(`sabt_queue_depth\\{queue="${env.SABT_MQ_PREFIX}\\.intake"\\} 0`))

    // A process that stops says so in its last snapshot, and leaves the list at once.
    await workers!.stop()
    workers = null
    await waitFor(
      async () => (await live()).processes.map((p) => p.roles.join('+')).join() === 'status',
      'the stopped process gone from the list',
      5000,
    )
  })

  it('finds a registration by id or national id, masking national ids and mobiles except the one searched for', async () => {
    const w = await startSabt({
      roles: ['gateway', 'recorder'],
      env,
      config: status.config,
      log: createLogger({ level: env.LOG_LEVEL }),
      listen: false,
    })
    try {
      await w.mq!.waitForConnect()
      const reg = registration({ first_name: 'زهرا', last_name: 'محمدی' }) as Record<string, string>
      const res = await w.app.inject({ method: 'POST', url: '/v1/registrations', payload: reg })
      const id = res.json<{ id: string }>().id
      const lookup = async (q: string) =>
        (
          await status.app.inject({ method: 'POST', url: '/admin/lookup', headers: admin, payload: { q } })
        ).json<{
          kind: string
          by?: string
          records?: {
            id: string
            national_id: string
            mobile: string
            first_name: string
            checks: unknown[]
          }[]
        }>()
      const byId = await waitFor(async () => {
        const l = await lookup(id)
        return l.kind === 'records' && l
      }, 'the registration recorded')
      const rec = byId.records![0]!
      expect(rec).toMatchObject({ id, first_name: 'زهرا' })
      expect(rec.national_id).toBe(`${reg.national_id!.slice(0, 2)}******${reg.national_id!.slice(-2)}`)
      expect(rec.mobile).toBe(`${reg.mobile!.slice(0, 2)}*******${reg.mobile!.slice(-2)}`)
      // By national id, typed in Persian digits: the searched id shown in full.
      const persianDigits = reg.national_id!.replace(/[0-9]/g, (d) => String.fromCharCode(0x06f0 + Number(d)))
      const byNid = await lookup(persianDigits)
      expect(byNid).toMatchObject({ kind: 'records', by: 'national_id' })
      expect(byNid.records![0]).toMatchObject({ id, national_id: reg.national_id })
      expect(byNid.records![0]!.mobile).not.toBe(reg.mobile)
      expect(await lookup('0000000000')).toMatchObject({ kind: 'invalid' })
      expect(await lookup('not an id')).toMatchObject({ kind: 'invalid' })
      expect(await lookup(registration().national_id as string)).toEqual({
        kind: 'not_found',
        by: 'national_id',
      })
    } finally {
      await w.stop()
    }
  })
})

describe('behind the edge proxy (SABT_TRUST_PROXY)', () => {
  const forgedLogin = (s: TestSabt, token: string) =>
    s.app.inject({
      method: 'POST',
      url: '/dashboard/login',
      headers: {
        host: HOST,
        origin: `https://${HOST}`,
        'x-forwarded-proto': 'https',
        'x-forwarded-for': '203.0.113.7',
        'content-type': 'application/x-www-form-urlencoded',
      },
      payload: `token=${encodeURIComponent(token)}`,
    })

  it("believes X-Forwarded-Proto/-For only from a trusted address: the session cookie's Secure flag and the client address in the audit log", async () => {
    // inject() connects from 127.0.0.1: trusted in the first case, not in the others.
    for (const trust of ['127.0.0.0/8', '10.0.0.0/8,172.16.0.0/12', '']) {
      const { log, lines } = captureLogger()
      // SABT_COOKIE_SECURE=false: the flag then follows the request's protocol alone.
      const env = testEnv({ SABT_TRUST_PROXY: trust, SABT_COOKIE_SECURE: 'false' })
      const s = await startTestSabt({ roles: ['status'], env, log })
      try {
        const res = await forgedLogin(s, env.SABT_ADMIN_TOKEN!)
        expect(res.statusCode).toBe(303)
        const cookie = String(res.headers['set-cookie'])
        const login = lines
          .map((l) => JSON.parse(l) as { event?: string; ip?: string })
          .find((l) => l.event === 'admin.login')
        if (trust === '127.0.0.0/8') {
          expect(cookie).toMatch(/; Secure/)
          expect(login?.ip).toBe('203.0.113.7')
        } else {
          // Anyone can write those headers: from an address not trusted they change nothing.
          expect(cookie).not.toMatch(/Secure/)
          expect(login?.ip).toBe('127.0.0.1')
        }
      } finally {
        await s.cleanup()
      }
    }
  })

  it('issues the session cookie Secure by default, behind a TLS-terminating proxy and over plain HTTP alike', async () => {
    const env = testEnv({ SABT_TRUST_PROXY: '127.0.0.1' })
    const s = await startTestSabt({ roles: ['status'], env })
    try {
      const behindTls = await forgedLogin(s, env.SABT_ADMIN_TOKEN!)
      expect(String(behindTls.headers['set-cookie'])).toMatch(/; Secure/)
      const plain = await s.app.inject({
        method: 'POST',
        url: '/dashboard/login',
        headers: { ...SAME_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' },
        payload: `token=${encodeURIComponent(env.SABT_ADMIN_TOKEN!)}`,
      })
      expect(plain.statusCode).toBe(303)
      expect(String(plain.headers['set-cookie'])).toMatch(/; Secure/)
    } finally {
      await s.cleanup()
    }
  })
})
