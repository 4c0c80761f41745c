import { afterEach, describe, expect, it } from 'vitest'
import { MqClient } from '../src/mq/connection.js'
import { Consumer } from '../src/mq/consumer.js'
import { deleteTopology, type TopologyOptions } from '../src/mq/topology.js'
import { createLogger } from '../src/observability/logger.js'
import { AmqpFrameCounter } from './support/amqp-frames.js'
import { AMQP_URL, queueDepth, uniqueName, waitFor } from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

// RabbitMQ 4.3 changed what counts toward a quorum queue's delivery limit: basic.reject does,
// basic.nack no longer does (https://www.rabbitmq.com/docs/4.3/nack). Sabt's requeues must reach
// the dead letters on every version, so they must never rely on the broker counting nacks.
const log = createLogger({ level: 'silent' })

describe('a message that keeps failing', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  it('reaches the dead letters after the delivery limit, requeued with basic.reject (never basic.nack)', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5672)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const frames = new AmqpFrameCounter()
    proxy.tapRequests(frames.push)

    const topology: TopologyOptions = {
      prefix: uniqueName('mq'),
      intakeShards: 1,
      intakeMaxLength: 1000,
      intakeDeliveryLimit: 3,
      checks: [],
      retryTiersMs: [1000],
    }
    const mq = new MqClient(proxy.url('amqp'), topology, log, 'test-requeue')
    await mq.start()
    await mq.waitForConnect()
    cleanups.push(async () => {
      const admin = new MqClient(AMQP_URL, topology, log, 'test-requeue-admin')
      await admin.start()
      await admin.waitForConnect()
      const ch = await admin.model!.createChannel()
      await deleteTopology(ch, topology)
      await admin.close()
    })
    let deliveries = 0
    const consumer = new Consumer(
      mq,
      { name: 'test', queues: mq.names.intakeQueues, prefetch: 1 },
      (d) => {
        deliveries++
        consumer.nack(d, true) // "could not do it now, try again": a failure, counted
      },
      log,
    )
    await consumer.start()
    cleanups.push(async () => {
      await consumer.close()
      await mq.close()
    })
    const ch = await mq.model!.createConfirmChannel()
    ch.publish(mq.names.intakeExchange, '0', Buffer.from('{"poison":true}'), { persistent: true })
    await ch.waitForConfirms()
    await ch.close()

    await waitFor(
      async () => (await queueDepth(mq.names.intakeDead)) === 1,
      'the message in the dead letters',
    )
    expect(deliveries).toBeGreaterThanOrEqual(3)
    expect(deliveries).toBeLessThanOrEqual(5)
    expect(await queueDepth(mq.names.intakeQueues[0]!)).toBe(0)
    // How it got there: every requeue a basic.reject, which every RabbitMQ version counts.
    expect(frames.counts.nackRequeue).toBe(0)
    expect(frames.counts.rejectRequeue).toBeGreaterThanOrEqual(3)
  })
})
