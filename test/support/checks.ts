import { createLogger, type Logger } from '../../src/observability/logger.js'
import type { Knobs } from '../../src/roles/simulator/knobs.js'
import { buildSimulator, type Simulator } from '../../src/roles/simulator/server.js'
import { startTestSabt, type TestSabt, testConfig, testEnv } from './harness.js'

export interface ChecksSystem {
  sabt: TestSabt
  sim: Simulator
  simUrl: string
  adminToken: string
  knobs(provider: string, k: Partial<Knobs>): Promise<void>
  stats(): Promise<
    Record<
      string,
      {
        calls: number
        max_calls_per_second: number
        rate_limited: number
        repeated_keys: number
        answered: number
      }
    >
  >
  resetStats(): Promise<void>
  cleanup(): Promise<void>
}

/**
 * The whole pipeline in-process (gateway, recorder, checker, status) against a simulator on a
 * real port, with short delay tiers so retries happen within a test.
 */
export async function startChecksSystem(opts: {
  checks?: Record<string, Record<string, unknown>>
  campaigns?: Record<string, Record<string, unknown>>
  knobs?: Record<string, Partial<Knobs>>
  retryTiers?: string[]
  env?: Record<string, string>
  /** The environment config/sabt.yaml is read with (e.g. the variables `callback_secret_env` names). */
  configEnv?: Record<string, string>
  /** Listen on a real port (browser tests); the URL is in sabt.url. */
  listen?: boolean
  /** An `sms:` provider at the simulator's /sms (fields override the defaults). */
  sms?: Record<string, unknown>
  /** The roles started (default gateway, recorder, checker, status). */
  roles?: ('gateway' | 'recorder' | 'checker' | 'status')[]
  /** The roles' and the simulator's logger (e.g. captureLogger's, to assert on every line). */
  log?: Logger
}): Promise<ChecksSystem> {
  const env = testEnv(opts.env ?? {})
  const adminToken = env.SABT_ADMIN_TOKEN!
  const fast = { latency_median_ms: 2, latency_p99_ms: 5 }
  const sim = await buildSimulator({
    log: opts.log ?? createLogger({ level: 'error' }),
    adminToken,
    knobs: {
      identity: { ...fast, ...opts.knobs?.identity },
      mobile: { ...fast, ...opts.knobs?.mobile },
      eligibility: { ...fast, ...opts.knobs?.eligibility },
      sms: { ...fast, ...opts.knobs?.sms },
    },
  })
  const simUrl = await sim.listen({ host: '127.0.0.1', port: 0 })
  const base = { timeout_ms: 1000, concurrency: 8, rate_per_second: 500, max_attempts: 4 }
  const checks = {
    identity: { provider: 'identity', url: `${simUrl}/identity`, ...base, ...opts.checks?.identity },
    mobile: { provider: 'mobile', url: `${simUrl}/mobile`, ...base, ...opts.checks?.mobile },
    eligibility: {
      provider: 'eligibility',
      url: `${simUrl}/eligibility`,
      ...base,
      ...opts.checks?.eligibility,
    },
  }
  const config = testConfig(
    {
      retry_tiers: opts.retryTiers ?? ['200ms', '500ms', '1s'],
      checks,
      ...(opts.sms ? { sms: { url: `${simUrl}/sms`, ...base, ...opts.sms } } : {}),
      campaigns: opts.campaigns ?? {
        demo: { title: 'Demo', checks: ['identity', { name: 'mobile', after: ['identity'] }, 'eligibility'] },
      },
    },
    opts.configEnv ?? {},
  )
  const sabt = await startTestSabt({
    roles: opts.roles ?? ['gateway', 'recorder', 'checker', 'status'],
    env,
    config,
    listen: opts.listen ?? false,
    ...(opts.log ? { log: opts.log } : {}),
  })
  const admin = { authorization: `Bearer ${adminToken}` }
  return {
    sabt,
    sim,
    simUrl,
    adminToken,
    knobs: async (provider, k) => {
      const r = await fetch(`${simUrl}/admin/providers/${provider}`, {
        method: 'PUT',
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify(k),
      })
      if (r.status !== 200) throw new Error(`knobs: ${r.status} ${await r.text()}`)
    },
    stats: async () => (await (await fetch(`${simUrl}/admin/stats`, { headers: admin })).json()) as never,
    resetStats: async () => {
      await fetch(`${simUrl}/admin/stats/reset`, { method: 'POST', headers: admin })
    },
    cleanup: async () => {
      await sabt.cleanup()
      await sim.close()
    },
  }
}
