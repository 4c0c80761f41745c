import { isConnectionError } from '../../db/pool.js'
import type { MqClient } from '../../mq/connection.js'
import { Consumer, type Delivery } from '../../mq/consumer.js'
import { ATTEMPT_HEADER, type CheckMessage, parseCheckMessage } from '../../mq/messages.js'
import type { Logger } from '../../observability/logger.js'
import { PermanentError, RateLimitedError, TransientError } from './outcomes.js'
import { headerNumber, PARKED_HEADER, type Redirector } from './redirect.js'

/** The message waits in a delay tier without spending an attempt (circuit open, rate-limited). */
export class ParkError extends Error {
  override name = 'ParkError'
  constructor(
    readonly reason: 'circuit_open' | 'rate_limited' | 'unavailable',
    readonly minDelayMs: number,
    message?: string,
  ) {
    super(message ?? reason)
  }
}

/** A message parked this many times without progress counts as a failed attempt. */
export const MAX_PARKED = 60

/** What a worker does with one message; the worker does the moving (retry, park, dead letter). */
export interface Task {
  /** The check's name ('callback' for verdict callbacks): the routing key back to its queue. */
  readonly name: string
  readonly queue: string
  readonly concurrency: number
  readonly maxAttempts: number
  /** Finishes the message, or throws TransientError / PermanentError / RateLimitedError / ParkError. */
  perform(msg: CheckMessage, attempt: number): Promise<void>
  /** Bookkeeping after a retryable failure moved the message to a delay tier. */
  onRetry(msg: CheckMessage, attempts: number, error: string): Promise<void>
  /** Bookkeeping after the last attempt moved the message to the dead letters. */
  onDead(msg: CheckMessage, attempts: number, error: string): Promise<void>
}

/**
 * Consumes one check queue with `concurrency` messages in flight. Every outcome ends in exactly
 * one place, and the original is acked only once that place has it: the answer stored, or the
 * message confirmed into a delay tier or the dead letters. Crash anywhere → redelivery → the
 * stored answer is found and the provider is not called again.
 */
export class Worker {
  readonly consumer: Consumer
  readonly #inFlight = new Set<Promise<void>>()

  constructor(
    readonly task: Task,
    readonly mq: MqClient,
    readonly redirect: Redirector,
    readonly log: Logger,
  ) {
    this.consumer = new Consumer(
      mq,
      { name: `checker.${task.name}`, queues: [task.queue], prefetch: task.concurrency },
      (d) => this.#track(d),
      log,
    )
  }

  async start(): Promise<void> {
    await this.consumer.start()
  }

  async stop(): Promise<void> {
    await this.consumer.pause()
    await Promise.allSettled([...this.#inFlight])
    await this.consumer.close()
  }

  get inFlight(): number {
    return this.#inFlight.size
  }

  #track(d: Delivery): void {
    const p = this.#handle(d).catch((err) => {
      this.log.error({ event: 'checker.unhandled', check: this.task.name, err: (err as Error).message })
    })
    this.#inFlight.add(p)
    p.finally(() => this.#inFlight.delete(p))
  }

  async #handle(d: Delivery): Promise<void> {
    const msg = parseCheckMessage(d.msg.content)
    if (!msg) {
      this.log.warn({ event: 'checker.unparseable', check: this.task.name })
      this.consumer.nack(d, false) // → the check queue's dead-letter exchange → sabt.dead
      return
    }
    const attempt = headerNumber(d, ATTEMPT_HEADER)
    const parked = headerNumber(d, PARKED_HEADER)
    try {
      await this.task.perform(msg, attempt)
      this.consumer.ack(d)
    } catch (err) {
      try {
        await this.#redirect(d, msg, attempt, parked, err)
        this.consumer.ack(d)
      } catch (moveErr) {
        // Could not move it (broker or database down): leave it unacked and hand it back shortly;
        // RabbitMQ's delivery limit bounds how often this can happen to one message.
        this.log.warn({
          event: 'checker.redirect_failed',
          check: this.task.name,
          registration_id: msg.registration_id,
          err: (moveErr as Error).message,
        })
        await new Promise((r) => setTimeout(r, 1000))
        this.consumer.nack(d, true)
      }
    }
  }

  async #redirect(
    d: Delivery,
    msg: CheckMessage,
    attempt: number,
    parked: number,
    err: unknown,
  ): Promise<void> {
    const { task, redirect } = this
    if (err instanceof ParkError || err instanceof RateLimitedError || isConnectionError(err)) {
      const reason =
        err instanceof ParkError
          ? err.reason
          : err instanceof RateLimitedError
            ? 'rate_limited'
            : 'unavailable'
      const minDelay =
        err instanceof ParkError ? err.minDelayMs : err instanceof RateLimitedError ? err.retryAfterMs : 1000
      // Our own database being down is not the provider's fault: park without limit or attempt.
      const counts = reason !== 'unavailable'
      if (!counts || parked + 1 <= MAX_PARKED) {
        await redirect.toTier(
          d,
          task.name,
          redirect.tierFor(minDelay),
          { attempt, parked: counts ? parked + 1 : parked },
          reason,
        )
        this.log.debug({
          event: 'checker.parked',
          check: task.name,
          registration_id: msg.registration_id,
          reason,
        })
        return
      }
      err = new TransientError(`${reason} for ${parked} consecutive tries`)
    }
    const message = err instanceof Error ? err.message : String(err)
    if (!(err instanceof TransientError) && !(err instanceof PermanentError)) {
      // A bug or an unexpected failure: treat as transient, but say so loudly.
      this.log.error({
        event: 'checker.unexpected',
        check: task.name,
        registration_id: msg.registration_id,
        err: message,
      })
    }
    const attempts = attempt + 1
    if (err instanceof PermanentError || attempts >= task.maxAttempts) {
      await redirect.toDead(d, task.name, attempts, message)
      await task.onDead(msg, attempts, message)
      this.log.warn({
        event: 'checker.dead_letter',
        check: task.name,
        registration_id: msg.registration_id,
        attempts,
        err: message,
      })
      return
    }
    await redirect.toTier(
      d,
      task.name,
      redirect.tierAfterAttempts(attempts),
      { attempt: attempts, parked: 0, lastError: message },
      'retry',
    )
    await task.onRetry(msg, attempts, message)
    this.log.debug({
      event: 'checker.retry',
      check: task.name,
      registration_id: msg.registration_id,
      attempts,
      err: message,
    })
  }
}
