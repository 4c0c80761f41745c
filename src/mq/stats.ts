import type { Channel, ChannelModel } from 'amqplib'
import { closeWithin, openChannel } from './channels.js'
import type { MqClient } from './connection.js'
import { declareStatsQueue } from './topology.js'

/**
 * The stats exchange's broker side (what a snapshot is lives in src/observability/snapshots.ts):
 * every process sends its snapshot there once a second, and each status process reads them all
 * from its own exclusive, auto-deleted queue. Transient and best-effort: losing one is harmless.
 */
export class StatsSender {
  #ch: Channel | null = null
  #opening: Promise<Channel | null> | null = null

  constructor(readonly mq: MqClient) {}

  async #channel(): Promise<Channel | null> {
    if (this.#ch) return this.#ch
    const model = this.mq.model
    if (!model) return null
    this.#opening ??= (async () => {
      try {
        const ch = await openChannel(model)
        ch.on('close', () => {
          if (this.#ch === ch) this.#ch = null
        })
        this.#ch = ch
        return ch
      } catch {
        return null
      } finally {
        this.#opening = null
      }
    })()
    return this.#opening
  }

  /**
   * Sends one snapshot (built by `body` only once a channel is there); false when it could not be
   * sent. Never waits more than `waitMs` for a channel.
   */
  async send(body: () => Promise<Buffer>, waitMs = 1000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const ch = await Promise.race([
      this.#channel(),
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), waitMs)
      }),
    ])
    clearTimeout(timer)
    if (!ch) return false
    return ch.publish(this.mq.names.statsExchange, '', await body(), {
      persistent: false,
      contentType: 'application/json',
      expiration: '10000',
      type: 'sabt.stats.v1',
    })
  }

  async close(): Promise<void> {
    const ch = this.#ch
    this.#ch = null
    await closeWithin(ch)
  }
}

/**
 * Reads every process's snapshots, on every (re)connection, from a queue of this process's own.
 * Trouble subscribing is reported to `onError` and never fails the connection's setup.
 */
export class StatsReceiver {
  #ch: Channel | null = null
  #closed = false

  constructor(
    readonly mq: MqClient,
    readonly onMessage: (content: Buffer) => void,
    readonly onError: (err: Error) => void,
  ) {}

  async start(): Promise<void> {
    await this.mq.onConnect((model) => this.#subscribe(model))
  }

  async #subscribe(model: ChannelModel): Promise<void> {
    if (this.#closed) return
    try {
      const ch = await openChannel(model, this.onError)
      const queue = await declareStatsQueue(ch, this.mq.names)
      await ch.consume(
        queue,
        (msg) => {
          if (msg) this.onMessage(msg.content)
        },
        { noAck: true },
      )
      this.#ch = ch
    } catch (err) {
      this.onError(err as Error)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    const ch = this.#ch
    this.#ch = null
    await closeWithin(ch)
  }
}
