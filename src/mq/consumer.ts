import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib'
import type { Logger } from '../observability/logger.js'
import type { MqClient } from './connection.js'

/** A message as received, tied to the channel it came on: acks are only valid on that channel. */
export interface Delivery {
  readonly msg: ConsumeMessage
  readonly channel: Channel
  readonly queue: string
}

export interface ConsumerOptions {
  name: string
  queues: readonly string[]
  prefetch: number
}

/**
 * Consumes one or more queues on one channel with a prefetch window. After a reconnect it
 * consumes again on a fresh channel; deliveries from the old channel are stale (the broker
 * redelivers them), and acking them is skipped instead of killing the new channel.
 */
export class Consumer {
  #channel: Channel | null = null
  #tags: string[] = []
  #paused = false
  #closed = false

  constructor(
    readonly mq: MqClient,
    readonly opts: ConsumerOptions,
    readonly onDelivery: (d: Delivery) => void,
    readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.mq.on('disconnect', () => {
      this.#channel = null
      this.#tags = []
    })
    await this.mq.onConnect((model) => this.#open(model))
  }

  get channel(): Channel | null {
    return this.#channel
  }

  async #open(model: ChannelModel): Promise<void> {
    if (this.#closed) return
    const ch = await model.createChannel()
    ch.on('error', (err: Error) =>
      this.log.warn({ event: 'mq.consumer.channel_error', consumer: this.opts.name, err: err.message }),
    )
    ch.on('close', () => {
      if (this.#channel !== ch) return
      this.#channel = null
      this.#tags = []
      if (!this.#closed && this.mq.model === model) {
        setTimeout(() => {
          if (this.#channel === null && this.mq.model === model) this.#open(model).catch(() => {})
        }, 500).unref()
      }
    })
    await ch.prefetch(this.opts.prefetch)
    this.#channel = ch
    if (!this.#paused) await this.#consume(ch)
  }

  async #consume(ch: Channel): Promise<void> {
    const tags: string[] = []
    for (const queue of this.opts.queues) {
      const { consumerTag } = await ch.consume(queue, (msg) => {
        if (msg === null) {
          this.log.warn({ event: 'mq.consumer.cancelled', consumer: this.opts.name, queue })
          return
        }
        this.onDelivery({ msg, channel: ch, queue })
      })
      tags.push(consumerTag)
    }
    this.#tags = tags
  }

  /** True when the delivery's channel is still the live one (its tag can be acked). */
  isLive(d: Delivery): boolean {
    return d.channel === this.#channel
  }

  /**
   * Acks (with `allUpTo`, every earlier delivery of the channel too). False when the delivery's
   * channel is gone or closing: the broker redelivers it, which changes nothing.
   */
  ack(d: Delivery, allUpTo = false): boolean {
    if (!this.isLive(d)) return false
    try {
      d.channel.ack(d.msg, allUpTo)
      return true
    } catch {
      return false // the channel closed under us (amqplib throws): same as not live
    }
  }

  /**
   * Gives a delivery back: `requeue` to try it again, or not, to dead-letter it. Sent as
   * basic.reject, never basic.nack: RabbitMQ 4.3 stopped counting a nack toward a quorum queue's
   * delivery limit (only a reject counts, as every version did), so a message that keeps failing
   * would loop forever instead of reaching its dead letters.
   */
  nack(d: Delivery, requeue: boolean): boolean {
    if (!this.isLive(d)) return false
    try {
      d.channel.reject(d.msg, requeue)
      return true
    } catch {
      return false
    }
  }

  /**
   * Closes the channel so that the broker redelivers everything it holds unacked (a consumer
   * that lost track of its deliveries); a fresh channel consumes again.
   */
  async recover(): Promise<void> {
    const ch = this.#channel
    await ch?.close().catch(() => {})
  }

  /** Stops new deliveries (those already received stay ours to ack). */
  async pause(): Promise<void> {
    this.#paused = true
    const ch = this.#channel
    const tags = this.#tags
    this.#tags = []
    if (ch) for (const t of tags) await ch.cancel(t).catch(() => {})
  }

  async resume(): Promise<void> {
    if (!this.#paused) return
    this.#paused = false
    if (this.#channel && this.#tags.length === 0) await this.#consume(this.#channel)
  }

  async close(): Promise<void> {
    this.#closed = true
    const ch = this.#channel
    this.#channel = null
    await ch?.close().catch(() => {})
  }
}
