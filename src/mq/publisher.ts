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
  resolve: (() => void) | null
  reject: ((e: PublishError) => void) | null
  deadline: number
  settled: boolean
  /** Not handed to the channel yet: waiting for its write buffer to drain. */
  send: (() => void) | null
}

/**
 * Publishes persistent messages on one confirm channel with many publishes in flight at once
 * (confirms are pipelined; the broker acks them in batches). Every promise settles: acked,
 * nacked, returned, channel closed, or timed out — whichever comes first.
 *
 * Memory stays bounded whatever the broker does. `maxInFlight` counts every publish the process
 * still holds: those waiting for the channel's write buffer to drain (a broker that stops reading
 * — a resource alarm, a frozen node — makes `publish()` return false; nothing more is written
 * until 'drain'), and those written but not yet confirmed, including the ones already answered
 * with a timeout, until the broker (or the channel's close) releases them. Past the bound a
 * publish is refused at once ('overloaded') instead of piling up in amqplib's buffers.
 */
export class Publisher {
  #channel: ConfirmChannel | null = null
  #generation = 0
  #seq = 0
  readonly #inFlight = new Map<number, InFlight>()
  /** Publishes this process holds: waiting to be written, or written and not released by the channel. */
  #held = 0
  #needDrain = false
  /** Publishes waiting for the write buffer to drain, in order. */
  #queued: InFlight[] = []
  /** Producers in whenWritable(), woken by 'drain' or by the channel going away. */
  #drainWaiters: Array<() => void> = []
  /** The current channel's returned messages (see #open). */
  #returns = new Map<string, number>()
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
    metrics.inFlightSources.set(opts.name, () => this.#held)
  }

  async start(): Promise<void> {
    this.mq.on('disconnect', () => this.#dropChannel())
    await this.mq.onConnect((model) => this.#open(model))
  }

  get ready(): boolean {
    return this.#channel !== null && !this.mq.blocked
  }

  /** Publishes this process holds (waiting for drain, or unconfirmed): what maxInFlight bounds. */
  get inFlight(): number {
    return this.#held
  }

  /** Message ids with a returned publish still awaiting its confirm (each confirm takes its own out). */
  get pendingReturns(): number {
    return this.#returns.size
  }

  async #open(model: ChannelModel): Promise<void> {
    if (this.#closed) return
    const ch = await model.createConfirmChannel()
    const generation = ++this.#generation
    // messageId → how many in-flight messages with that id the broker returned unroutable. The
    // broker sends basic.return before the message's ack, so each confirm takes its entry out;
    // the map goes with the channel, so a return whose confirm never comes cannot leak.
    const returned = new Map<string, number>()
    ch.on('error', (err: Error) => {
      this.log.warn({ event: 'mq.publisher.channel_error', publisher: this.opts.name, err: err.message })
    })
    ch.on('return', (msg: Message) => {
      const id = msg.properties.messageId as string | undefined
      if (id) returned.set(id, (returned.get(id) ?? 0) + 1)
    })
    ch.on('drain', () => {
      if (this.#channel === ch) this.#releaseDrain()
    })
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
    this.#returns = returned
    this.#needDrain = false
    this.log.debug({ event: 'mq.publisher.ready', publisher: this.opts.name })
  }

  #dropChannel(): void {
    this.#channel = null
    this.#generation++
    // amqplib fails the callbacks of unconfirmed publishes when the channel closes; settle any
    // left at once anyway, so a caller is never left waiting for a confirm that cannot come.
    for (const [seq, f] of this.#inFlight) this.#settle(seq, f, new PublishError('closed'))
    this.#queued = []
    this.#needDrain = false
    this.#wakeDrainWaiters()
  }

  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters
    this.#drainWaiters = []
    for (const w of waiters) w()
  }

  /** The write buffer drained: write what waited, in order, until it fills again. */
  #releaseDrain(): void {
    this.#needDrain = false
    const queued = this.#queued
    let i = 0
    for (; i < queued.length && !this.#needDrain; i++) {
      const f = queued[i]!
      const send = f.send
      if (!send) continue // timed out while it waited: already answered and released
      f.send = null
      send()
    }
    this.#queued = queued.slice(i)
    if (!this.#needDrain) this.#wakeDrainWaiters()
  }

  /** A publish that never reached the channel is released at once. */
  #unhold(f: InFlight): void {
    f.send = null
    this.#held--
  }

  #settle(seq: number, f: InFlight, err: PublishError | null): void {
    if (f.settled) return
    f.settled = true
    this.#inFlight.delete(seq)
    if (f.send) this.#unhold(f) // never written: nothing of it is left in the channel
    this.metrics.publishConfirms.inc({ publisher: this.opts.name, result: err ? err.kind : 'ack' })
    const { resolve, reject } = f
    f.resolve = null
    f.reject = null
    if (err) reject?.(err)
    else resolve?.()
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
    if (this.#held >= this.opts.maxInFlight) return this.#fail('overloaded')
    return new Promise<void>((resolve, reject) => {
      const seq = ++this.#seq
      const entry: InFlight = {
        resolve,
        reject,
        deadline: Date.now() + this.opts.confirmTimeoutMs,
        settled: false,
        send: null,
      }
      this.#inFlight.set(seq, entry)
      this.#held++
      const send = () => this.#write(ch, seq, entry, exchange, routingKey, body, options)
      if (this.#needDrain) {
        entry.send = send
        this.#queued.push(entry)
      } else send()
    })
  }

  #write(
    ch: ConfirmChannel,
    seq: number,
    entry: InFlight,
    exchange: string,
    routingKey: string,
    body: Buffer,
    options: PublishOptions,
  ): void {
    if (this.#channel !== ch) {
      this.#held--
      this.#settle(seq, entry, new PublishError('closed'))
      return
    }
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
        this.#onConfirm(ch, seq, entry, options.messageId, mandatory),
      )
      if (!writable) {
        this.#needDrain = true
        this.metrics.publishBackpressure.inc({ publisher: this.opts.name })
      }
    } catch (err) {
      this.log.warn({ event: 'mq.publish_threw', publisher: this.opts.name, err: (err as Error).message })
      this.#held--
      this.#settle(seq, entry, new PublishError('closed'))
    }
  }

  /**
   * The confirm callback, built apart from publish() so that it holds no reference to the body:
   * a publish that timed out costs a few bytes until the broker (or the channel's close) answers.
   */
  #onConfirm(
    ch: ConfirmChannel,
    seq: number,
    entry: InFlight,
    messageId: string,
    mandatory: boolean,
  ): (err: unknown) => void {
    return (err: unknown) => {
      this.#held-- // the channel let go of it: confirmed, refused, or closed
      if (entry.settled) return
      if (err) {
        // amqplib fails every callback of a closing channel before our own 'close' handler runs:
        // decide after it (which settles them as 'closed'); a real nack is still unsettled then.
        queueMicrotask(() => this.#settle(seq, entry, new PublishError('nack')))
        return
      }
      if (mandatory && this.#channel === ch) {
        const n = this.#returns.get(messageId)
        if (n) {
          if (n === 1) this.#returns.delete(messageId)
          else this.#returns.set(messageId, n - 1)
          return this.#settle(seq, entry, new PublishError('returned'))
        }
      }
      this.#settle(seq, entry, null)
    }
  }

  /**
   * Waits while the socket's write buffer is full (publish() returned false): a producer that
   * loops over many messages calls this between them so memory stays bounded.
   */
  async whenWritable(): Promise<void> {
    if (!this.#needDrain || this.#channel === null) return
    await new Promise<void>((resolve) => this.#drainWaiters.push(resolve))
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
