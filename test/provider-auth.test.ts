import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { buildConfig } from '../src/config/campaigns.js'
import { createLogger } from '../src/observability/logger.js'
import {
  identityMatches,
  identityReason,
  mobileMatches,
  mobileReason,
} from '../src/roles/simulator/answers.js'
import { buildSimulator, type Simulator } from '../src/roles/simulator/server.js'
import { registration, sql, startTestSabt, type TestSabt, testEnv, waitFor } from './support/harness.js'

/** A worked example of docs/providers.md, as the reader copies it. */
function docExample(name: string): unknown {
  const md = readFileSync(new URL('../docs/providers.md', import.meta.url), 'utf8')
  const at = md.indexOf(`<!-- example: ${name}`)
  const m = /```yaml\n([\s\S]*?)```/.exec(md.slice(at))
  if (at < 0 || !m) throw new Error(`no example ${name} in docs/providers.md`)
  return parseYaml(m[1]!)
}

interface System {
  sabt: TestSabt
  sim: Simulator
  admin: (path: string) => Promise<Record<string, unknown>>
}

describe('provider authentication (the worked examples of docs/providers.md, against the simulator)', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function start(
    example: string,
    env: Record<string, string>,
    tokenClock?: () => number,
  ): Promise<System> {
    // 1,000 registrations from one test client: past the default per-client intake limit.
    const e = testEnv({ SABT_CLIENT_RATE: '0' })
    const sim = await buildSimulator({
      log: createLogger({ level: 'error' }),
      adminToken: e.SABT_ADMIN_TOKEN!,
      knobs: {
        identity: { latency_median_ms: 1, latency_p99_ms: 3 },
        mobile: { latency_median_ms: 1, latency_p99_ms: 3 },
      },
    })
    const simUrl = await sim.listen({ host: '127.0.0.1', port: 0 })
    cleanups.push(() => sim.close())
    const doc = docExample(example) as Record<string, unknown>
    const config = buildConfig(
      { ...doc, retry_tiers: ['200ms', '500ms'] },
      { SABT_SIMULATOR_URL: simUrl, ...env },
    )
    const sabt = await startTestSabt({
      roles: ['gateway', 'recorder', 'checker', 'status'],
      env: e,
      config,
      ...(tokenClock ? { tokenClock } : {}),
    })
    cleanups.push(() => sabt.cleanup())
    const admin = async (path: string) =>
      (await (
        await fetch(`${simUrl}${path}`, {
          method: path.endsWith('/stats') ? 'GET' : 'POST',
          headers: { authorization: `Bearer ${e.SABT_ADMIN_TOKEN}` },
        })
      ).json()) as Record<string, unknown>
    return { sabt, sim, admin }
  }

  async function submitAll(s: System, n: number): Promise<{ id: string; reg: Record<string, string> }[]> {
    const regs = Array.from({ length: n }, () => registration() as Record<string, string>)
    const out: { id: string; reg: Record<string, string> }[] = []
    // In groups, so the calls to the provider overlap as they would under load.
    for (let i = 0; i < regs.length; i += 50) {
      const res = await Promise.all(
        regs
          .slice(i, i + 50)
          .map((r) => s.sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: r })),
      )
      res.forEach((r, j) => {
        expect(r.statusCode).toBe(202)
        out.push({ id: r.json<{ id: string }>().id, reg: regs[i + j]! })
      })
    }
    return out
  }

  async function verdicts(s: System, ids: string[]) {
    return waitFor(
      async () => {
        const rows = await sql<{ id: string; status: string; outcome: string; reason_code: string | null }>(
          s.sabt.env.DATABASE_URL,
          `SELECT r.id::text, r.status, c.outcome, c.reason_code FROM registrations r
           JOIN check_results c ON c.registration_id = r.id WHERE r.id = ANY($1)`,
          [ids],
        )
        return (
          rows.length === ids.length &&
          rows.every((r) => r.status === 'accepted' || r.status === 'rejected') &&
          new Map(rows.map((r) => [r.id, r]))
        )
      },
      `verdicts of ${ids.length}`,
      60_000,
      100,
    )
  }

  it('OAuth2: one token for 1,000 calls, one refresh when it expires, one more on a 401 — and the answers map to outcome and reason', async () => {
    let skewMs = 0
    const s = await start(
      'oauth2',
      { OPERATOR_CLIENT_SECRET: 'simulator-client-secret' },
      () => Date.now() + skewMs,
    )
    const stats = async () =>
      (await s.admin('/admin/stats')) as { real_apis: Record<string, number>; mobile: Record<string, number> }

    const first = await submitAll(s, 1000)
    const got = await verdicts(
      s,
      first.map((x) => x.id),
    )
    let st = await stats()
    expect(st.mobile.answered).toBe(1000)
    expect(st.real_apis.tokens_issued).toBe(1)
    expect(st.real_apis.unauthorized).toBe(0)
    for (const { id, reg } of first) {
      const q = { national_id: reg.national_id!, mobile: reg.mobile! }
      const row = got.get(id)!
      expect(row.outcome).toBe(mobileMatches(q) ? 'passed' : 'failed')
      expect(row.reason_code).toBe(mobileMatches(q) ? null : mobileReason(q).code)
    }

    // The token's hour is up (as the checker's clock sees it): one new token for the next calls.
    skewMs = 3600_000
    await verdicts(
      s,
      (await submitAll(s, 200)).map((x) => x.id),
    )
    st = await stats()
    expect(st.real_apis.tokens_issued).toBe(2)

    // The provider revokes its tokens: the calls that meet a 401 share one new token, and each is tried again once.
    await s.admin('/admin/oauth/revoke')
    await verdicts(
      s,
      (await submitAll(s, 200)).map((x) => x.id),
    )
    st = await stats()
    expect(st.real_apis.tokens_issued).toBe(3)
    expect(st.real_apis.unauthorized).toBeGreaterThanOrEqual(1)
    expect(st.mobile.answered).toBe(1400)
    const dead = await sql(s.sabt.env.DATABASE_URL, "SELECT 1 FROM check_results WHERE outcome = 'error'")
    expect(dead).toEqual([])
    const fetches = await s.sabt.metrics.registry.getSingleMetricAsString('sabt_oauth_token_fetches_total')
    expect(fetches).toMatch(/sabt_oauth_token_fetches_total\{host="127\.0\.0\.1:\d+"\} 3/)
  })

  it('HMAC: every signed call verifies at the simulator, and a nested answer maps to outcome and reason', async () => {
    const s = await start('hmac', { REGISTRY_HMAC_SECRET: 'simulator-hmac-secret' })
    const subs = await submitAll(s, 100)
    const got = await verdicts(
      s,
      subs.map((x) => x.id),
    )
    const st = (await s.admin('/admin/stats')) as { real_apis: Record<string, number> }
    expect(st.real_apis.signatures_verified).toBe(100)
    expect(st.real_apis.signatures_refused).toBe(0)
    for (const { id, reg } of subs) {
      const q = reg as never
      expect(got.get(id)!.outcome).toBe(identityMatches(q) ? 'passed' : 'failed')
      expect(got.get(id)!.reason_code).toBe(identityMatches(q) ? null : identityReason(q).code)
    }
    expect([...got.values()].some((r) => r.outcome === 'failed')).toBe(true)
  })

  it('HMAC with the wrong secret: the simulator refuses the signature (401), and the check is dead-lettered, not judged', async () => {
    const s = await start('hmac', { REGISTRY_HMAC_SECRET: 'not-the-simulators-secret' })
    const [sub] = await submitAll(s, 1)
    await waitFor(async () => {
      const r = await sql<{ outcome: string }>(
        s.sabt.env.DATABASE_URL,
        'SELECT outcome FROM check_results WHERE registration_id = $1',
        [sub!.id],
      )
      return r[0]?.outcome === 'error'
    }, 'the check to be dead-lettered')
    const st = (await s.admin('/admin/stats')) as { real_apis: Record<string, number> }
    expect(st.real_apis.signatures_refused).toBe(1)
    expect(st.real_apis.signatures_verified).toBe(0)
  })
})
