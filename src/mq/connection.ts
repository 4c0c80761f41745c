import { EventEmitter } from 'node:events'
import amqp, { type ChannelModel, type RecoveringChannelModel } from 'amqplib'
import type { Logger } from '../observability/logger.js'
import { closeWithin } from './channels.js'
import { declareTopology, type TopologyNames, type TopologyOptions, topologyNames } from './topology.js'

/** Called on every (re)connection, after the topology is declared: open channels, start consumers. */
export type OnConnect = (model: ChannelModel) => Promise<void>

/**
 * One AMQP connection that recovers by itself (amqplib's recovery: backoff with jitter, forever),
 * re-declares the whole topology on every reconnect, then re-runs each component's `onConnect`.
 * Channels do not survive a reconnect: components keep no channel across one.
 *
 * Events: `connect`, `disconnect`, `blocked` (broker resource alarm), `unblocked`.
 */
export class MqClient extends EventEmitter {
  readonly names: TopologyNames
  #conn: RecoveringChannelModel | null = null
  #model: ChannelModel | null = null
  #blocked = false
  #closing = false
  readonly #handlers: OnConnect[] = []

  constructor(
    readonly url: string,
    readonly topology: TopologyOptions,
    readonly log: Logger,
    readonly name = 'sabt',
    /**
     * How long a (re)connection may take: the AMQP handshake, and then declaring the topology and
     * every component's `onConnect`. amqplib's recovery awaits both with no limit and tries
     * nothing else meanwhile, so one broker call that never answers (seen when a cluster node was
     * killed: the gateways' reconnection hung in its setup for good, every /readyz 503) would
     * keep the process off the broker forever. Past this, the attempt is dropped and retried.
     */
    readonly setupTimeoutMs = 15_000,
  ) {
    super()
    this.names = topologyNames(topology)
  }

  get connected(): boolean {
    return this.#model !== null
  }

  get blocked(): boolean {
    return this.#blocked
  }

  get model(): ChannelModel | null {
    return this.#model
  }

  /** Starts connecting; resolves at once (roles answer 503 until the broker is there). */
  async start(): Promise<void> {
    const conn = await amqp.connect(this.#urlWithDefaults(), {
      clientProperties: { connection_name: this.name },
      // Nagle off: a lone publish (the group commit's one message in flight per shard) is several
      // AMQP frames; with Nagle the later frames wait for the broker's delayed ACK (~40 ms each).
      noDelay: true,
      // The TCP connect and the AMQP handshake (amqplib clears it once the connection is open):
      // in the cluster run a reconnection through HAProxy to a node going down hung here.
      timeout: Math.min(10_000, this.setupTimeoutMs),
      recovery: {
        waitForConnect: false,
        initialDelay: 100,
        maxDelay: 5000,
        maxRetries: Number.POSITIVE_INFINITY,
        setup: (model: ChannelModel) => this.#setup(model),
      },
    })
    this.#conn = conn
    conn.on('connect', (model: ChannelModel) => {
      this.#model = model
      this.#blocked = false
      this.log.info({ event: 'mq.connected' }, 'connected to RabbitMQ')
      this.emit('connect', model)
    })
    conn.on('disconnect', (err: Error) => {
      this.#model = null
      if (!this.#closing)
        this.log.warn({ event: 'mq.disconnected', err: err.message }, 'lost RabbitMQ connection')
      this.emit('disconnect', err)
    })
    conn.on('connect-failed', (err: Error) => {
      this.log.warn({ event: 'mq.connect_failed', err: err.message }, 'cannot reach RabbitMQ; retrying')
    })
    conn.on('blocked', (reason: string) => {
      this.#blocked = true
      this.log.warn({ event: 'mq.blocked', reason }, 'RabbitMQ blocked publishing (resource alarm)')
      this.emit('blocked', reason)
    })
    conn.on('unblocked', () => {
      this.#blocked = false
      this.log.info({ event: 'mq.unblocked' }, 'RabbitMQ unblocked publishing')
      this.emit('unblocked')
    })
    conn.on('error', (err: Error) => {
      this.log.warn({ event: 'mq.error', err: err.message }, 'RabbitMQ connection error')
    })
  }

  /** Topology, then each component's onConnect, within setupTimeoutMs; else this connection is cut and retried. */
  async #setup(model: ChannelModel): Promise<void> {
    const work = (async () => {
      const ch = await model.createChannel()
      try {
        await declareTopology(ch, this.topology)
      } finally {
        await ch.close().catch(() => {})
      }
      for (const h of this.#handlers) await h(model)
    })()
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`setup did not finish in ${this.setupTimeoutMs} ms`)),
        this.setupTimeoutMs,
      )
    })
    try {
      await Promise.race([work, timedOut])
    } catch (err) {
      work.catch(() => {}) // it may still settle, on a connection that is gone by then
      this.log.warn(
        { event: 'mq.setup_failed', err: (err as Error).message },
        'RabbitMQ connection setup failed; reconnecting',
      )
      // Close this connection ourselves, briefly: amqplib closes the model next and awaits that
      // too, so a close the broker does not answer would hang the recovery just the same.
      const m = model as ChannelModel & { connection?: { stream?: { destroy(): void } } }
      m.on('error', () => {})
      await closeWithin(model, 2000, () => m.connection?.stream?.destroy())
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  #urlWithDefaults(): string {
    // A dead broker must be noticed within seconds, not after the OS gives up on TCP.
    const u = new URL(this.url)
    if (!u.searchParams.has('heartbeat')) u.searchParams.set('heartbeat', '5')
    return u.toString()
  }

  /** Registers a component; runs at once if connected, and after every reconnect. */
  async onConnect(handler: OnConnect): Promise<void> {
    this.#handlers.push(handler)
    if (this.#model) await handler(this.#model)
  }

  async waitForConnect(timeoutMs = 30_000): Promise<void> {
    if (this.#model) return
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for RabbitMQ')), timeoutMs)
      this.once('connect', () => {
        clearTimeout(t)
        resolve()
      })
    })
  }

  /** Queue depth as RabbitMQ reports it (passive declare); null when the broker is not reachable. */
  async queueDepth(queue: string): Promise<{ messages: number; consumers: number } | null> {
    const model = this.#model
    if (!model) return null
    let ch: Awaited<ReturnType<ChannelModel['createChannel']>> | null = null
    try {
      ch = await model.createChannel()
      ch.on('error', () => {})
      const r = await ch.checkQueue(queue)
      return { messages: r.messageCount, consumers: r.consumerCount }
    } catch {
      return null
    } finally {
      await ch?.close().catch(() => {})
    }
  }

  /**
   * Depths of several queues on one channel (passive declares, one round trip each), for the
   * status role's once-a-second sampling. A queue that does not exist closes the channel (404):
   * it answers null and the next queue gets a fresh channel. Null for all when not connected.
   */
  async queueDepths(
    queues: readonly string[],
  ): Promise<Map<string, { messages: number; consumers: number } | null>> {
    const out = new Map<string, { messages: number; consumers: number } | null>()
    const model = this.#model
    let ch: Awaited<ReturnType<ChannelModel['createChannel']>> | null = null
    try {
      for (const q of queues) {
        if (!model) {
          out.set(q, null)
          continue
        }
        try {
          if (!ch) {
            ch = await model.createChannel()
            ch.on('error', () => {})
          }
          const r = await ch.checkQueue(q)
          out.set(q, { messages: r.messageCount, consumers: r.consumerCount })
        } catch {
          out.set(q, null)
          const broken = ch
          ch = null
          await broken?.close().catch(() => {})
        }
      }
    } finally {
      await ch?.close().catch(() => {})
    }
    return out
  }

  /** Closes the connection; a broker that does not answer the close within 3 s is cut off. */
  async close(): Promise<void> {
    this.#closing = true
    const model = this.#model as (ChannelModel & { connection?: { stream?: { destroy(): void } } }) | null
    await closeWithin(this.#conn, 3000, () => model?.connection?.stream?.destroy())
    this.#model = null
  }
}
