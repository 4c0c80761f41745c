import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ConfigError } from '../src/config/env.js'
import { createLogger } from '../src/observability/logger.js'
import { Metrics } from '../src/observability/metrics.js'
import {
  CallbackTask,
  callbackKey,
  signWebhook,
  WEBHOOK_TOLERANCE_S,
} from '../src/roles/checker/callback-task.js'
import { type ChecksSystem, startChecksSystem } from './support/checks.js'
import { registration, testConfig, waitFor } from './support/harness.js'

/**
 * Verdict callbacks as the webhook ecosystem signs them (Standard Webhooks): `webhook-id`,
 * `webhook-timestamp`, `webhook-signature`, each campaign with its own secret. Verified here with
 * the `standardwebhooks` library a receiver would use, and with the check docs/security.md shows.
 */

const whsec = () => `whsec_${randomBytes(32).toString('base64')}`
const secrets = { alpha: whsec(), beta: whsec(), global: whsec() }

interface Taken {
  body: string
  headers: Record<string, string>
}
const taken = new Map<string, Taken>() // by registration id
let receiver: Server
let s: ChecksSystem

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      taken.set((JSON.parse(body) as { id: string }).id, {
        body,
        headers: req.headers as Record<string, string>,
      })
      res.writeHead(204).end()
    })
  })
  receiver.listen(0, '127.0.0.1')
  await once(receiver, 'listening')
  const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/verdicts`
  s = await startChecksSystem({
    campaigns: {
      alpha: {
        title: 'A',
        checks: ['identity'],
        callback_url: url,
        callback_secret_env: 'SABT_CALLBACK_SECRET_ALPHA',
      },
      beta: {
        title: 'B',
        checks: ['identity'],
        callback_url: url,
        callback_secret_env: 'SABT_CALLBACK_SECRET_BETA',
      },
      gamma: { title: 'C', checks: ['identity'], callback_url: url },
    },
    env: { SABT_CALLBACK_SECRET: secrets.global },
    configEnv: { SABT_CALLBACK_SECRET_ALPHA: secrets.alpha, SABT_CALLBACK_SECRET_BETA: secrets.beta },
  })
}, 60_000)

afterAll(async () => {
  await s?.cleanup()
  receiver?.close()
})

async function callbackFor(campaign: string): Promise<Taken> {
  const r = await s.sabt.app.inject({
    method: 'POST',
    url: '/v1/registrations',
    payload: registration({ campaign }),
  })
  expect(r.statusCode, r.body).toBe(202)
  const id = (r.json() as { id: string }).id
  return waitFor(() => taken.get(id), `the ${campaign} callback`, 20_000)
}

describe('verdict callbacks (Standard Webhooks)', () => {
  it('a callback verifies with the standardwebhooks library and its campaign’s own secret', async () => {
    const a = await callbackFor('alpha')
    expect(a.headers['webhook-id']).toMatch(/^verdict_[0-9a-f-]{36}$/)
    expect(Math.abs(Number(a.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60)
    expect(a.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/)
    expect(a.headers['x-sabt-signature']).toBeUndefined() // the old, replayable header is gone
    const payload = new Webhook(secrets.alpha).verify(a.body, a.headers) as { campaign: string }
    expect(payload.campaign).toBe('alpha')
  })

  it('campaign A’s secret does not verify campaign B’s callbacks (nor the global one)', async () => {
    const b = await callbackFor('beta')
    expect(() => new Webhook(secrets.alpha).verify(b.body, b.headers)).toThrow(/signature/i)
    expect(() => new Webhook(secrets.global).verify(b.body, b.headers)).toThrow(/signature/i)
    expect(new Webhook(secrets.beta).verify(b.body, b.headers)).toMatchObject({ campaign: 'beta' })
    // A campaign without callback_secret_env is signed with SABT_CALLBACK_SECRET.
    const c = await callbackFor('gamma')
    expect(new Webhook(secrets.global).verify(c.body, c.headers)).toMatchObject({ campaign: 'gamma' })
    expect(() => new Webhook(secrets.alpha).verify(c.body, c.headers)).toThrow(/signature/i)
  })

  it('a replayed callback outside the tolerance window is refused by the documented check', async () => {
    const a = await callbackFor('alpha')
    const sentS = Number(a.headers['webhook-timestamp'])
    const wh = new Webhook(secrets.alpha)
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      vi.setSystemTime((sentS + WEBHOOK_TOLERANCE_S - 10) * 1000)
      expect(() => wh.verify(a.body, a.headers)).not.toThrow() // a late retry within the window
      vi.setSystemTime((sentS + WEBHOOK_TOLERANCE_S + 1) * 1000)
      expect(() => wh.verify(a.body, a.headers)).toThrow(/too old/i)
      // A replay with a fresh timestamp but the old signature: the timestamp is signed.
      vi.setSystemTime(sentS * 1000)
      const forged = { ...a.headers, 'webhook-timestamp': String(sentS + 1) }
      expect(() => wh.verify(a.body, forged)).toThrow(/signature/i)
    } finally {
      vi.useRealTimers()
    }
  })

  it('signs exactly as the library signs (whsec_ base64 secrets; raw strings as UTF-8)', () => {
    const body = '{"id":"x","status":"accepted"}'
    const at = new Date(1_760_000_000_000)
    expect(signWebhook(callbackKey(secrets.alpha), 'verdict_x', at.getTime() / 1000, body)).toBe(
      new Webhook(secrets.alpha).sign('verdict_x', at, body),
    )
    const raw = 'a-plain-secret-of-some-length'
    expect(signWebhook(callbackKey(raw), 'verdict_x', at.getTime() / 1000, body)).toBe(
      new Webhook(raw, { format: 'raw' }).sign('verdict_x', at, body),
    )
    expect(() => callbackKey('whsec_c2hvcnQ=')).toThrow(/16 random bytes/)
  })

  it('a checker whose campaign names a callback secret variable it was not given refuses to start, naming it', () => {
    const config = testConfig({
      checks: {},
      campaigns: {
        alpha: {
          title: 'A',
          callback_url: 'http://127.0.0.1:9/',
          callback_secret_env: 'SABT_CALLBACK_SECRET_ALPHA',
        },
      },
    })
    const make = () =>
      new CallbackTask({
        mq: { names: { callbackQueue: 'q' } } as never,
        pool: null as never,
        config,
        metrics: new Metrics(),
        log: createLogger({ level: 'silent' }),
        secret: secrets.global,
        leaseMs: 1000,
      })
    expect(make).toThrow(ConfigError)
    expect(make).toThrow(/campaigns\.alpha\.callback_secret_env: SABT_CALLBACK_SECRET_ALPHA is not set/)
    // Never shown when the configuration is printed.
    const withSecret = testConfig(
      { checks: {}, campaigns: { alpha: { title: 'A', callback_secret_env: 'S_A' } } },
      { S_A: 'the-secret-value-0123' },
    )
    expect(withSecret.campaigns.get('alpha')!.callbackSecret).toBe('the-secret-value-0123')
    expect(JSON.stringify([...withSecret.campaigns.values()])).not.toContain('the-secret-value')
  })
})
