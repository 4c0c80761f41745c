import amqp from 'amqplib'
import { afterEach, describe, expect, it } from 'vitest'
import {
  AMQP_URL,
  queueDepth,
  registration,
  startTestSabt,
  type TestSabt,
  testEnv,
  waitFor,
} from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

// The promise behind a 202 is "the broker has it in a queue". When that cannot be known, the
// answer is 503 with Retry-After — never a 202. "Broker gone" is a TCP proxy the test cuts.
describe('gateway when the broker fails', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  async function gateway(overrides: Record<string, string> = {}, amqpUrl?: string): Promise<TestSabt> {
    const env = testEnv(amqpUrl ? { AMQP_URL: amqpUrl, ...overrides } : overrides)
    const s = await startTestSabt({ roles: ['gateway'], env }).catch(async (err) => {
      throw err
    })
    cleanups.push(() => s.cleanup())
    return s
  }
  const post = (s: TestSabt, body: unknown = registration()) =>
    s.app.inject({ method: 'POST', url: '/v1/registrations', payload: body as Record<string, unknown> })

  function expect503(
    res: { statusCode: number; headers: Record<string, unknown>; json: () => unknown },
    code: string,
  ) {
    expect(res.statusCode).toBe(503)
    expect(res.headers['retry-after']).toMatch(/^[0-9]+$/)
    expect(res.json()).toMatchObject({ statusCode: 503, code })
  }

  it('answers 503 + Retry-After while the broker is unreachable, and 202 once it is back', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5672)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const s = await gateway({}, proxy.url('amqp', ''))
    expect((await post(s)).statusCode).toBe(202)

    await proxy.cut()
    await waitFor(() => !s.mq!.connected, 'the gateway to notice the broker is gone')
    for (let i = 0; i < 5; i++) expect503(await post(s), 'SABT_BROKER_UNAVAILABLE')
    const ready = await s.app.inject({ method: 'GET', url: '/readyz' })
    expect(ready.statusCode).toBe(503)
    expect(ready.json()).toMatchObject({ status: 'not_ready', components: { broker: 'down' } })

    await proxy.restore()
    await waitFor(() => s.mq!.connected, 'the gateway to reconnect by itself', 30_000)
    await waitFor(async () => (await post(s)).statusCode === 202, 'a 202 again')
    expect((await s.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200)
  })

  it('answers 503 when the broker was never reachable', async () => {
    const closed = new TcpProxy('127.0.0.1', 5672)
    await closed.start()
    await closed.cut() // a port nothing listens on
    const env = testEnv({ AMQP_URL: closed.url('amqp') })
    const { startSabt } = await import('../src/runtime/start.js')
    const { testConfig } = await import('./support/harness.js')
    const s = await startSabt({ roles: ['gateway'], env, config: testConfig(), listen: false })
    cleanups.push(() => s.stop())
    expect503(await post(s as TestSabt), 'SABT_BROKER_UNAVAILABLE')
  })

  it('answers 503 when the intake queue is at its bound (x-overflow reject-publish → nack)', async () => {
    const s = await gateway({ SABT_INTAKE_MAX_LENGTH: '3' })
    const codes: number[] = []
    for (let i = 0; i < 6; i++) {
      const res = await post(s)
      codes.push(res.statusCode)
      if (res.statusCode === 503) expect503(res, 'SABT_QUEUE_FULL')
    }
    // A quorum queue checks its bound before enqueueing, so it may hold one message past it.
    const accepted = codes.filter((c) => c === 202).length
    expect(accepted).toBeGreaterThanOrEqual(3)
    expect(accepted).toBeLessThanOrEqual(4)
    expect(codes.slice(accepted).every((c) => c === 503)).toBe(true)
    expect(await queueDepth(s.mq!.names.intakeQueues[0]!)).toBe(accepted)
  })

  it('answers 503 for an unroutable publish (a confirm alone does not prove it was queued)', async () => {
    const s = await gateway()
    expect((await post(s)).statusCode).toBe(202)
    const conn = await amqp.connect(AMQP_URL)
    const ch = await conn.createChannel()
    const q = s.mq!.names.intakeQueues[0]!
    await ch.unbindQueue(q, s.mq!.names.intakeExchange, '0')
    try {
      expect503(await post(s), 'SABT_UNROUTABLE')
      expect503(await post(s), 'SABT_UNROUTABLE')
    } finally {
      await ch.bindQueue(q, s.mq!.names.intakeExchange, '0')
      await conn.close()
    }
    expect((await post(s)).statusCode).toBe(202)
    expect(await queueDepth(q)).toBe(2)
  })

  it('answers 503 when the confirm does not come in time', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5672)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const s = await gateway({ SABT_CONFIRM_TIMEOUT_MS: '300' }, proxy.url('amqp'))
    expect((await post(s)).statusCode).toBe(202)
    proxy.pauseReplies() // the broker receives, but its confirms never reach the gateway
    try {
      const started = Date.now()
      expect503(await post(s), 'SABT_CONFIRM_TIMEOUT')
      expect(Date.now() - started).toBeLessThan(2000)
    } finally {
      proxy.resumeReplies()
    }
  })

  it('answers 503 (overloaded) past the in-flight window instead of queueing in memory', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5672)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const s = await gateway(
      { SABT_PUBLISH_MAX_IN_FLIGHT: '2', SABT_CONFIRM_TIMEOUT_MS: '2000' },
      proxy.url('amqp'),
    )
    proxy.pauseReplies()
    try {
      const pending = [post(s), post(s)]
      // The bound counts registrations, not messages: the second waits to join the next message
      // while the first's publish awaits its confirm (group commit).
      await waitFor(
        () => s.metrics.inFlightSources.get('intake_registrations')?.() === 2,
        'two registrations awaiting confirms',
      )
      expect503(await post(s), 'SABT_OVERLOADED')
      proxy.resumeReplies()
      expect((await Promise.all(pending)).map((r) => r.statusCode)).toEqual([202, 202])
    } finally {
      proxy.resumeReplies()
    }
  })
})
