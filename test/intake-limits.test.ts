import { afterAll, describe, expect, it } from 'vitest'
import { loadEnv } from '../src/config/env.js'
import { createApiKey } from '../src/db/api-keys.js'
import { registration, startTestSabt, type TestSabt, testEnv, waitFor } from './support/harness.js'

// Issue 17 item 4: a default per-client limit on the public intake; partner bursts within the key's rate.
describe('intake limits', () => {
  const started: TestSabt[] = []
  afterAll(async () => {
    for (const s of started) await s.cleanup()
  })
  const start = async (env: Record<string, string>) => {
    const s = await startTestSabt({ roles: ['gateway', 'recorder'], env: testEnv(env) })
    started.push(s)
    return s
  }
  const post = (
    s: TestSabt,
    remoteAddress: string,
    headers: Record<string, string> = {},
    payload: object = {},
  ) => s.app.inject({ method: 'POST', url: '/v1/registrations', remoteAddress, headers, payload })

  it('limits each client address by default: past the burst, 429 with Retry-After and the JSON error body', async () => {
    const defaults = loadEnv({})
    expect([defaults.SABT_CLIENT_RATE, defaults.SABT_CLIENT_BURST]).toEqual([20, 200])
    const s = await start({})
    // The limit is taken before the body is read: invalid bodies (422) spend it too, and cost nothing.
    // The bucket refills at 20/s while the requests are sent, so what gets through is the burst plus
    // what the elapsed time refilled — never more (a loaded machine sends them slower).
    const codes: number[] = []
    const began = performance.now()
    while (codes.length < 2000 && codes.at(-1) !== 429) codes.push((await post(s, '198.51.100.1')).statusCode)
    const elapsedS = (performance.now() - began) / 1000
    expect(codes.at(-1)).toBe(429)
    const through = codes.filter((c) => c === 422).length
    expect(through).toBe(codes.length - 1)
    expect(through).toBeGreaterThanOrEqual(200)
    expect(through).toBeLessThanOrEqual(200 + Math.ceil(elapsedS * 20) + 1)
    const limited = await post(s, '198.51.100.1', {}, registration())
    expect(limited.statusCode).toBe(429)
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    expect(limited.json()).toMatchObject({
      statusCode: 429,
      code: 'SABT_RATE_LIMITED',
      errors: [{ field: '(client)', rule: 'rate_limit' }],
    })
    // Another address is not slowed by it, and a real registration goes in.
    expect((await post(s, '198.51.100.2', {}, registration())).statusCode).toBe(202)
  })

  it('tells clients apart by X-Forwarded-For only behind a trusted proxy; SABT_CLIENT_RATE=0 turns the limit off', async () => {
    const trusted = await start({
      SABT_CLIENT_RATE: '1',
      SABT_CLIENT_BURST: '2',
      SABT_TRUST_PROXY: '10.0.0.0/8',
    })
    const via = (s: TestSabt, from: string, xff: string) => post(s, from, { 'x-forwarded-for': xff })
    // From the proxy: each forwarded client has its own budget.
    expect((await via(trusted, '10.1.2.3', '203.0.113.1')).statusCode).toBe(422)
    expect((await via(trusted, '10.1.2.3', '203.0.113.1')).statusCode).toBe(422)
    expect((await via(trusted, '10.1.2.3', '203.0.113.1')).statusCode).toBe(429)
    expect((await via(trusted, '10.1.2.3', '203.0.113.2')).statusCode).toBe(422)
    // From anywhere else the header is ignored: a client cannot mint itself new addresses.
    for (const [i, want] of [422, 422, 429, 429].entries())
      expect((await via(trusted, '192.0.2.9', `203.0.113.${100 + i}`)).statusCode).toBe(want)

    const off = await start({ SABT_CLIENT_RATE: '0' })
    for (let i = 0; i < 300; i++) expect((await post(off, '198.51.100.1')).statusCode).toBe(422)
  })

  it('never lets a partner key at 5/s have 1,000 records accepted in one second: the excess is answered 429', async () => {
    const s = await start({ SABT_CLIENT_RATE: '0' })
    const key = (await createApiKey(s.pool!, 'slow-partner', 5)).key
    const batch = (records: unknown[]) =>
      s.app.inject({
        method: 'POST',
        url: '/v1/registrations/batch',
        headers: { authorization: `Bearer ${key}` },
        payload: { records },
      })
    await waitFor(
      async () => (await batch([])).statusCode !== 401,
      'the gateway to load the key',
      15_000,
      200,
    )
    const t0 = Date.now()
    const first = await batch(Array.from({ length: 1000 }, () => registration()))
    expect(first.statusCode).toBe(207)
    const body = first.json() as {
      accepted: number
      results: { status: number; code?: string; errors?: unknown }[]
    }
    const again = await batch(Array.from({ length: 1000 }, () => registration()))
    const elapsedS = (Date.now() - t0) / 1000
    const acceptedAgain = again.statusCode === 429 ? 0 : (again.json() as { accepted: number }).accepted
    // The burst is the rate: 5 records, plus what 5/s earns while the two requests ran.
    expect(body.accepted + acceptedAgain).toBeLessThanOrEqual(5 + Math.ceil(elapsedS * 5))
    expect(body.accepted).toBeGreaterThanOrEqual(1)
    expect(body.results.slice(0, body.accepted).every((r) => r.status === 202)).toBe(true)
    const excess = body.results.slice(body.accepted)
    expect(excess.length).toBe(1000 - body.accepted)
    expect(excess.every((r) => r.status === 429 && r.code === 'SABT_RATE_LIMITED')).toBe(true)
    expect(excess[0]).toMatchObject({ errors: [{ rule: 'rate_limit' }] })
    expect(Number(first.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    if (again.statusCode === 429) expect(again.json()).toMatchObject({ code: 'SABT_RATE_LIMITED' })
  })
})
