import { afterEach, describe, expect, it } from 'vitest'
import { MqClient } from '../src/mq/connection.js'
import { PublishError, Publisher, type PublishFailure } from '../src/mq/publisher.js'
import { deleteTopology, type TopologyOptions } from '../src/mq/topology.js'
import { createLogger } from '../src/observability/logger.js'
import { Metrics } from '../src/observability/metrics.js'
import { AMQP_URL, queueDepth, uniqueName, waitFor } from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

// The publisher under a broker that misbehaves while staying connected (issue 16, items 6 and 7):
// memory stays bounded, and every failure is reported as what it was.

const log = createLogger({ level: 'silent' })

describe('publisher', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  async function setup(opts: { maxInFlight: number; confirmTimeoutMs: number }) {
    const proxy = new TcpProxy('127.0.0.1', 5672)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const topology: TopologyOptions = {
      prefix: uniqueName('mq'),
      intakeShards: 1,
      intakeMaxLength: 1_000_000,
      intakeDeliveryLimit: 5,
      checks: [],
      retryTiersMs: [1000],
    }
    // Topology declared directly on the broker (not through the proxy), and removed after.
    const admin = new MqClient(AMQP_URL, topology, log, 'test-admin')
    await admin.start()
    await admin.waitForConnect()
    cleanups.push(async () => {
      const ch = await admin.model!.createChannel()
      await deleteTopology(ch, topology).catch(() => {})
      await admin.close()
    })
    const mq = new MqClient(proxy.url('amqp'), topology, log, 'test-publisher')
    await mq.start()
    await mq.waitForConnect()
    const metrics = new Metrics({ defaultMetrics: false })
    const publisher = new Publisher(mq, { name: 'test', ...opts }, metrics, log)
    await publisher.start()
    await waitFor(() => publisher.ready, 'the publisher channel')
    cleanups.push(async () => {
      proxy.resumeReplies()
      proxy.resumeRequests()
      await publisher.close()
      await mq.close()
    })
    const results = async (): Promise<Record<string, number>> => {
      const m = await metrics.publishConfirms.get()
      return Object.fromEntries(m.values.map((v) => [v.labels.result as string, v.value]))
    }
    const publish = (body = Buffer.from('{}')) =>
      publisher.publish(mq.names.intakeExchange, '0', body, { messageId: uniqueName('m') }).then(
        () => 'ack' as const,
        (e: unknown) => (e instanceof PublishError ? e.kind : 'threw'),
      )
    return { proxy, mq, publisher, results, publish, queue: mq.names.intakeQueues[0]! }
  }

  it('holds at most maxInFlight publishes while the broker takes them but never confirms', async () => {
    const { proxy, publisher, publish, results } = await setup({ maxInFlight: 50, confirmTimeoutMs: 300 })
    proxy.pauseReplies() // a broker that reads every publish and answers none
    let most = 0
    const outcomes: (PublishFailure | 'ack' | 'threw')[] = []
    for (let wave = 0; wave < 4; wave++) {
      const answers = Array.from({ length: 50 }, () => publish())
      most = Math.max(most, publisher.inFlight)
      outcomes.push(...(await Promise.all(answers)))
      most = Math.max(most, publisher.inFlight)
    }
    // The first wave times out; the ones it left with amqplib still count, so later waves are
    // refused at once instead of piling up callbacks and bodies (the old code took them all).
    expect(most).toBeLessThanOrEqual(50)
    expect(outcomes.filter((o) => o === 'timeout')).toHaveLength(50)
    expect(outcomes.filter((o) => o === 'overloaded')).toHaveLength(150)
    expect((await results()).overloaded).toBe(150)

    proxy.resumeReplies() // the broker's confirms arrive at last: the held ones are released
    await waitFor(() => publisher.inFlight === 0, 'the late confirms to release the held publishes')
    expect(await publish()).toBe('ack')
  })

  it('stops writing when the broker stops reading (drain), and never writes what already timed out', async () => {
    const { proxy, publisher, publish, queue, results } = await setup({
      maxInFlight: 100_000,
      confirmTimeoutMs: 1500,
    })
    proxy.pauseRequests() // a broker that stops reading its socket
    const body = Buffer.alloc(64 * 1024, 0x20)
    const sent = 2000
    const answers = Array.from({ length: sent }, () => publish(body))
    const outcomes = await Promise.all(answers)
    expect(outcomes.every((o) => o === 'timeout')).toBe(true)
    expect((await results()).timeout).toBe(sent)
    expect((await metricsBackpressure(publisher)) > 0).toBe(true)
    proxy.resumeRequests()
    await waitFor(() => publisher.inFlight === 0, 'the written publishes to be confirmed', 30_000)
    // Only what was written before the buffers filled reached the broker (the kernel's socket
    // buffers take tens of MB on loopback); the rest waited for 'drain' and was answered (timeout)
    // without ever being written. The old code wrote all of them into amqplib's buffers, to be
    // delivered long after their 503.
    const arrived = await queueDepth(queue)
    expect(arrived).toBeGreaterThan(0)
    expect(arrived).toBeLessThan(sent * 0.75)
  })

  it('reports a channel lost with publishes in flight as closed, not as a nack', async () => {
    const { proxy, mq, publish, results } = await setup({ maxInFlight: 1000, confirmTimeoutMs: 10_000 })
    proxy.pauseReplies()
    const answers = Array.from({ length: 20 }, () => publish())
    await new Promise((r) => setTimeout(r, 200))
    await proxy.cut() // the connection drops with all 20 unconfirmed
    const outcomes = await Promise.all(answers)
    expect(outcomes).toEqual(Array(20).fill('closed'))
    const r = await results()
    expect(r.closed).toBe(20)
    expect(r.nack ?? 0).toBe(0)
    proxy.resumeReplies()
    await proxy.restore()
    await waitFor(() => mq.connected, 'reconnected', 30_000)
  })

  it('takes every returned publish out of its map when its confirm comes (the map leaked)', async () => {
    const { mq, publisher, publish, results } = await setup({ maxInFlight: 10_000, confirmTimeoutMs: 10_000 })
    // No queue is bound to this key: the broker returns each one before confirming it. Some share
    // one message id, as a replay's do, so the count per id must come down to nothing too.
    const shared = uniqueName('m')
    const outcomes = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        publisher
          .publish(mq.names.intakeExchange, 'nowhere', Buffer.from('{}'), {
            messageId: i % 10 === 0 ? shared : uniqueName('m'),
          })
          .then(
            () => 'ack',
            (e: unknown) => (e instanceof PublishError ? e.kind : 'threw'),
          ),
      ),
    )
    expect(outcomes).toEqual(Array(1000).fill('returned'))
    expect((await results()).returned).toBe(1000)
    expect(publisher.pendingReturns).toBe(0)
    expect(await publish()).toBe('ack')
  })
})

async function metricsBackpressure(publisher: Publisher): Promise<number> {
  const m = await publisher.metrics.publishBackpressure.get()
  return m.values.reduce((a, v) => a + v.value, 0)
}
