import { afterEach, describe, expect, it } from 'vitest'
import { MqClient } from '../src/mq/connection.js'
import { createLogger } from '../src/observability/logger.js'
import { topologyOptions } from '../src/runtime/start.js'
import { dropTopology, testConfig, testEnv, waitFor } from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

/**
 * MqClient's recovery when a reconnection does not finish: in the real three-node cluster run
 * (npm run test:deploy), killing the node the gateways were connected to left both gateways
 * reconnected at the TCP level but stuck in the connection's setup for good (amqplib's recovery
 * awaits it without a limit and tries nothing else), so intake answered 503 until they were
 * restarted. Here a component's onConnect hangs once after a broker outage.
 */
describe('broker connection recovery', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })

  it('drops a reconnection whose setup does not finish in time and connects again', async () => {
    const env = testEnv()
    const config = testConfig()
    const proxy = new TcpProxy('127.0.0.1', 5672)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const log = createLogger({ level: 'silent' })
    const mq = new MqClient(proxy.url('amqp'), topologyOptions(env, config), log, 'recovery-test', 1500)
    cleanups.push(() => dropTopology(env, config))
    cleanups.push(() => mq.close())
    let setups = 0
    let hangNext = false
    await mq.onConnect(async () => {
      setups++
      if (hangNext) {
        hangNext = false
        await new Promise(() => {}) // a broker call that never answers
      }
    })
    await mq.start()
    await mq.waitForConnect()
    expect(setups).toBe(1)

    hangNext = true
    const disconnected = new Promise((r) => mq.once('disconnect', r))
    await proxy.cut()
    await disconnected
    await proxy.restore()
    const t0 = Date.now()
    await waitFor(() => mq.connected && setups >= 3, 'a connection again after the hung setup', 20_000, 50)
    expect(setups).toBe(3) // the hung one, then the retry
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400)
    // …and it works: the topology is there and a channel opens.
    const depth = await mq.queueDepth(mq.names.intakeQueues[0]!)
    expect(depth).not.toBeNull()
  })
})
