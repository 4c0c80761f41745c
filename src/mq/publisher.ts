import type { ChannelModel, ConfirmChannel, Message } from 'amqplib'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import type { MqClient } from './connection.js'

/**
 * Why a publish was not confirmed. Each one means "the message may not be in a queue": the
 * gateway answers 503 (never 202), the recorder keeps the batch unacked.
 * - unavailable: no channel (broker down or reconnecting)
 * - blocked:     the broker raised a resource alarm (memory/disk) and stopped reading publishes
 * - overloaded:  too many publishes already waiting for confirms (bounded window)
 * - nack:        the broker refused it (a quorum queue at its bound: x-overflow reject-publish)
 * - returned:    unroutable (no queue bound for it): a confirm alone does not prove it is queued
 * - closed:      the channel closed before the confirm arrived
 * - timeout:     no confirm within the confirm timeout
 */
export type PublishFailure =
  | 'unavailable'
  | 'blocked'
  | 'overloaded'
  | 'nack'
  | 'returned'
  | 'closed'
  | 'timeout'

export class PublishError extends Error {
  override name = 'PublishError'
  constructor(readonly kind: PublishFailure) {
    super(`publish not confirmed: ${kind}`)
  }
}

export interface PublishOptions {
  messageId: string
  headers?: Record<string, unknown>
  /** Defaults to true: an unroutable message is returned, and reported as a failure. */
  mandatory?: boolean
  expiration?: string
}

interface InFlight {
  resolve: () => void
  reject: (e: PublishError) => void
  deadline: number
  messageId: string
  settled: boolean
}

/**
 * Publishes persistent messages on one confirm channel with many publishes in flight at once
 * (confirms are pipelined; the broker acks them in batches). Every promise settles: acked,
 * nacked, returned, channel closed, or timed out — whichever comes first.
 */
export class Publisher {
  #channel: ConfirmChannel | null = null
  #generation = 0
  #seq = 0
  readonly #inFlight = new Map<number, InFlight>()
  // messageId → how many of the in-flight messages with that id were returned unroutable.
  readonly #returned = new Map<string, number>()
  #needDrain = false
  #waitingDrain: Array<() => void> = []
  #sweeper: NodeJS.Timeout
  #closed = false

  constructor(
    readonly mq: MqClient,
    readonly opts: { name: string; confirmTimeoutMs: number; maxInFlight: number },
    readonly metrics: Metrics,
    readonly log: Logger,
  ) {
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, Math.min(100, opts.confirmTimeoutMs / 4)))
    this.#sweeper.unref()
    metrics.inFlightSources.set(opts.name, () => this.#inFlight.size)
  }

  async start(): Promise<void> {
    this.mq.on('disconnect', () => this.#dropChannel())
    await this.mq.onConnect((model) => this.#open(model))
  }

  get ready(): boolean {
    return this.#channel !== null && !this.mq.blocked
  }

  get inFlight(): number {
    return this.#inFlight.size
  }

  async #open(model: ChannelModel): Promise<void> {
    if (this.#closed) return
    const ch = await model.createConfirmChannel()
    const generation = ++this.#generation
    ch.on('error', (err: Error) => {
      this.log.warn({ event: 'mq.publisher.channel_error', publisher: this.opts.name, err: err.message })
    })
    ch.on('return', (msg: Message) => {
      const id = msg.properties.messageId as string | undefined
      if (id) this.#returned.set(id, (this.#returned.get(id) ?? 0) + 1)
    })
    ch.on('drain', () => this.#releaseDrain())
    ch.on('close', () => {
      if (this.#generation !== generation) return
      this.#dropChannel()
      // A channel can close while the connection lives (e.g. a channel-level error): reopen it.
      if (!this.#closed && this.mq.model === model) {
        setTimeout(() => {
          if (this.#channel === null && this.mq.model === model) this.#open(model).catch(() => {})
        }, 200).unref()
      }
    })
    this.#channel = ch
    this.log.debug({ event: 'mq.publisher.ready', publisher: this.opts.name })
  }

  #dropChannel(): void {
    this.#channel = null
    this.#generation++
    // amqplib fails the callbacks of unconfirmed publishes when the channel closes; settle any
    // left at once anyway, so a caller is never left waiting for a confirm that cannot come.
    for (const [seq, f] of this.#inFlight) this.#settle(seq, f, new PublishError('closed'))
    this.#releaseDrain()
  }

  #releaseDrain(): void {
    this.#needDrain = false
    const waiters = this.#waitingDrain
    this.#waitingDrain = []
    for (const w of waiters) w()
  }

  #settle(seq: number, f: InFlight, err: PublishError | null): void {
    if (f.settled) return
    f.settled = true
    this.#inFlight.delete(seq)
    this.metrics.publishConfirms.inc({ publisher: this.opts.name, result: err ? err.kind : 'ack' })
    if (err) f.reject(err)
    else f.resolve()
  }

  #sweep(): void {
    const now = Date.now()
    // Deadlines grow with insertion order, so the expired ones are at the front.
    for (const [seq, f] of this.#inFlight) {
      if (f.deadline > now) break
      this.#settle(seq, f, new PublishError('timeout'))
    }
  }

  /** Resolves when the broker has confirmed the message into a queue; rejects with PublishError. */
  publish(exchange: string, routingKey: string, body: Buffer, options: PublishOptions): Promise<void> {
    const ch = this.#channel
    if (this.#closed || ch === null) return this.#fail('unavailable')
    if (this.mq.blocked) return this.#fail('blocked')
    if (this.#inFlight.size >= this.opts.maxInFlight) return this.#fail('overloaded')
    return new Promise<void>((resolve, reject) => {
      const seq = ++this.#seq
      const entry: InFlight = {
        resolve,
        reject,
        deadline: Date.now() + this.opts.confirmTimeoutMs,
        messageId: options.messageId,
        settled: false,
      }
      this.#inFlight.set(seq, entry)
      const mandatory = options.mandatory ?? true
      try {
        const writable = ch.publish(
          exchange,
          routingKey,
          body,
          {
            persistent: true,
            mandatory,
            messageId: options.messageId,
            contentType: 'application/json',
            headers: options.headers,
            expiration: options.expiration,
          },
          (err: unknown) => {
            if (entry.settled) return
            if (err)
              return this.#settle(seq, entry, new PublishError(this.#channel === ch ? 'nack' : 'closed'))
            if (mandatory) {
              const returned = this.#returned.get(entry.messageId)
              if (returned) {
                if (returned === 1) this.#returned.delete(entry.messageId)
                else this.#returned.set(entry.messageId, returned - 1)
                return this.#settle(seq, entry, new PublishError('returned'))
              }
            }
            this.#settle(seq, entry, null)
          },
        )
        if (!writable) {
          this.#needDrain = true
          this.metrics.publishBackpressure.inc({ publisher: this.opts.name })
        }
      } catch (err) {
        this.log.warn({ event: 'mq.publish_threw', publisher: this.opts.name, err: (err as Error).message })
        this.#settle(seq, entry, new PublishError('closed'))
      }
    })
  }

  /**
   * Waits while the socket's write buffer is full (publish() returned false): a producer that
   * loops over many messages calls this between them so memory stays bounded.
   */
  async whenWritable(): Promise<void> {
    if (!this.#needDrain || this.#channel === null) return
    await new Promise<void>((resolve) => this.#waitingDrain.push(resolve))
  }

  #fail(kind: PublishFailure): Promise<never> {
    this.metrics.publishConfirms.inc({ publisher: this.opts.name, result: kind })
    return Promise.reject(new PublishError(kind))
  }

  /** Stops taking publishes, waits (bounded) for the in-flight ones to settle, closes the channel. */
  async close(): Promise<void> {
    const until = Date.now() + this.opts.confirmTimeoutMs
    while (this.#inFlight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
    this.#closed = true
    clearInterval(this.#sweeper)
    const ch = this.#channel
    this.#channel = null
    await ch?.close().catch(() => {})
  }
}
