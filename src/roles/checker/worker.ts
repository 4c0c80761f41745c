import { isDatabaseUnavailable } from '../../db/errors.js'
import type { MqClient } from '../../mq/connection.js'
import { Consumer, type Delivery } from '../../mq/consumer.js'
import { ATTEMPT_HEADER, type CheckMessage, chunk, parseCheckMessage } from '../../mq/messages.js'
import type { Logger } from '../../observability/logger.js'
import { PermanentError, RateLimitedError, TransientError } from './outcomes.js'
import { headerNumber, PARKED_HEADER, type Redirector } from './redirect.js'

/**
 * The message waits in a delay tier without spending an attempt: circuit open, rate-limited, our
 * database unreachable, or `unconfigured` — this process's configuration does not know the
 * record's campaign or the check (held, never decided from a configuration that lacks it).
 */
export class ParkError extends Error {
  override name = 'ParkError'
  constructor(
    readonly reason: 'circuit_open' | 'rate_limited' | 'unavailable' | 'unconfigured',
    readonly minDelayMs: number,
    message?: string,
  ) {
    super(message ?? reason)
  }
}

/** A record parked this many times without progress counts as a failed attempt. */
export const MAX_PARKED = 60

/**
 * How long a message is held while some of its records' moves are refused (a target queue at its
 * bound, confirms timing out): the moves that went are not made again, the refused ones are
 * retried. Far inside RabbitMQ's consumer timeout (30 min by default).
 */
export const MAX_HOLD_MS = 10 * 60_000

/** A check to ask next for a record (a check this one unlocked, or the verdict callback). */
export interface FollowUp {
  check: string
  campaign: string
  id: string
}

/** What a worker does with one record of a message; the worker does the moving (retry, park, dead letter). */
export interface Task {
  /** The check's name ('callback' for verdict callbacks): the routing key back to its queue. */
  readonly name: string
  readonly queue: string
  /** Records being worked on at once (a message may carry hundreds: they wait their turn). */
  readonly concurrency: number
  readonly maxAttempts: number
  /** Ids per message this task's follow-ups and redirects are grouped into. */
  readonly idsPerMessage: number
  /** Reads what a message's records need in one go, before they are worked on (optional). */
  prepare?(ids: readonly string[], campaign: string): Promise<unknown>
  /** Finishes one record (returning what to ask next), or throws TransientError / PermanentError / RateLimitedError / ParkError. */
  perform(id: string, campaign: string, attempt: number, prepared?: unknown): Promise<FollowUp[]>
  /**
   * Bookkeeping for records about to wait in a delay tier after a retryable failure (they come
   * back in `retryInMs`). Dead letters are booked by the dead-letter inbox, whatever sent them.
   */
  onRetry(
    campaign: string,
    retries: readonly { id: string; error: string }[],
    attempts: number,
    retryInMs: number,
  ): Promise<void>
}

/** One publish that moves some records on (to a check, a delay tier, the dead letters). */
interface Move {
  what: string
  ids: readonly string[]
  run(): Promise<void>
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A counting semaphore: at most `n` records of a task are worked on at once, across messages. */
class Slots {
  #free: number
  #waiting: Array<() => void> = []
  constructor(n: number) {
    this.#free = n
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((r) => this.#waiting.push(r))
    try {
      return await fn()
    } finally {
      const next = this.#waiting.shift()
      if (next) next()
      else this.#free++
    }
  }
}

type Result = { id: string; follow: FollowUp[] } | { id: string; err: unknown }

/**
 * Consumes one check queue. A message carries the ids of many records; each record is worked on
 * (at most `concurrency` at once across messages) and ends in exactly one place: its answer
 * stored, a delay tier, or the dead letters. Records that go the same way travel on together in
 * one message. The original is acked only once every record's place has it; a crash anywhere →
 * redelivery → answers already stored are found and those providers are not asked again.
 */
export class Worker {
  readonly consumer: Consumer
  readonly #inFlight = new Set<Promise<void>>()
  readonly #slots: Slots
  #stopping = false

  constructor(
    readonly task: Task,
    readonly mq: MqClient,
    readonly redirect: Redirector,
    readonly log: Logger,
    /** Ids per message for a check (its own limit: see idsPerCheckMessage). */
    readonly idsFor: (check: string) => number = () => task.idsPerMessage,
  ) {
    this.#slots = new Slots(task.concurrency)
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
    this.#stopping = true
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
    let prepared: unknown
    try {
      prepared = await this.task.prepare?.(msg.ids, msg.campaign)
    } catch {
      prepared = undefined // each record then reads for itself, and fails (and is parked) on its own
    }
    const results: Result[] = await Promise.all(
      msg.ids.map((id) =>
        this.#slots.run(() =>
          this.task.perform(id, msg.campaign, attempt, prepared).then(
            (follow): Result => ({ id, follow }),
            (err: unknown): Result => ({ id, err }),
          ),
        ),
      ),
    )
    try {
      await this.#settle(d, msg, attempt, parked, results)
      this.consumer.ack(d)
    } catch (moveErr) {
      if (!this.consumer.isLive(d)) return // its channel is gone: the broker redelivers it
      // Could not book or move them (broker or database down, for long): hand the message back
      // shortly; answers already stored are found on the next delivery. RabbitMQ's delivery limit
      // bounds how often this can happen to one message, and the dead-letter inbox books it then.
      this.log.warn({
        event: 'checker.redirect_failed',
        check: this.task.name,
        records: msg.ids.length,
        err: (moveErr as Error).message,
      })
      await sleep(1000)
      this.consumer.nack(d, true)
    }
  }

  /**
   * Books the retries, then publishes every record's next place, grouped, each confirmed. Only
   * the moves that were refused are tried again, while the message is held: a record that went
   * is never moved twice (no duplicate chain, no second paid call).
   */
  async #settle(
    d: Delivery,
    msg: CheckMessage,
    attempt: number,
    parked: number,
    results: Result[],
  ): Promise<void> {
    const { task, redirect } = this
    const followUps: FollowUp[] = []
    const parks = new Map<
      string,
      { tier: { label: string; ms: number }; reason: ParkError['reason']; counts: boolean; ids: string[] }
    >()
    const retries: { id: string; error: string }[] = []
    const dead: { id: string; error: string }[] = []

    for (const r of results) {
      if ('follow' in r) {
        followUps.push(...r.follow)
        continue
      }
      let err = r.err
      if (err instanceof ParkError || err instanceof RateLimitedError || isDatabaseUnavailable(err)) {
        const reason =
          err instanceof ParkError
            ? err.reason
            : err instanceof RateLimitedError
              ? 'rate_limited'
              : 'unavailable'
        const minDelay =
          err instanceof ParkError
            ? err.minDelayMs
            : err instanceof RateLimitedError
              ? err.retryAfterMs
              : 1000
        // Our own database being down is not the provider's fault, nor a configuration that lacks
        // the campaign: park without limit or attempt.
        const counts = reason !== 'unavailable' && reason !== 'unconfigured'
        if (!counts || parked + 1 <= MAX_PARKED) {
          const tier = redirect.tierFor(minDelay)
          const key = `${tier.label}:${reason}`
          const group = parks.get(key) ?? { tier, reason, counts, ids: [] }
          group.ids.push(r.id)
          parks.set(key, group)
          continue
        }
        err = new TransientError(`${reason} for ${parked} consecutive tries`)
      }
      const message = err instanceof Error ? err.message : String(err)
      if (!(err instanceof TransientError) && !(err instanceof PermanentError)) {
        // A bug or an unexpected failure: treat as transient, but say so loudly.
        this.log.error({ event: 'checker.unexpected', check: task.name, registration_id: r.id, err: message })
      }
      if (err instanceof PermanentError || attempt + 1 >= task.maxAttempts)
        dead.push({ id: r.id, error: message })
      else retries.push({ id: r.id, error: message })
    }

    // Bookkeeping first: if it fails, nothing has moved yet and the whole message may come back.
    const retryTier = redirect.tierAfterAttempts(attempt + 1)
    if (retries.length > 0) await task.onRetry(msg.campaign, retries, attempt + 1, retryTier.ms)

    const moves: Move[] = []
    // What the answers unlocked: one message per (check, campaign), fresh attempts.
    const byTarget = new Map<string, FollowUp[]>()
    for (const f of followUps) {
      const key = `${f.check}\u0000${f.campaign}`
      byTarget.set(key, [...(byTarget.get(key) ?? []), f])
    }
    for (const group of byTarget.values()) {
      const { check, campaign } = group[0]!
      for (const ids of chunk(
        group.map((f) => f.id),
        this.idsFor(check),
      ))
        moves.push({ what: `${check}`, ids, run: () => redirect.toCheck(check, campaign, ids) })
    }
    for (const g of parks.values())
      for (const ids of chunk(g.ids, task.idsPerMessage))
        moves.push({
          what: `park ${g.tier.label}`,
          ids,
          run: () =>
            redirect.toTier(
              task.name,
              { check: task.name, campaign: msg.campaign, ids },
              g.tier,
              { attempt, parked: g.counts ? parked + 1 : parked },
              g.reason,
            ),
        })
    for (const group of chunk(retries, task.idsPerMessage))
      moves.push({
        what: `retry ${retryTier.label}`,
        ids: group.map((g) => g.id),
        run: () =>
          redirect.toTier(
            task.name,
            { check: task.name, campaign: msg.campaign, ids: group.map((g) => g.id) },
            retryTier,
            { attempt: attempt + 1, parked: 0, lastError: group[0]!.error },
            'retry',
          ),
      })
    for (const group of chunk(dead, task.idsPerMessage))
      moves.push({
        what: 'dead letters',
        ids: group.map((g) => g.id),
        run: () =>
          redirect.toDead(
            task.name,
            { check: task.name, campaign: msg.campaign, ids: group.map((g) => g.id) },
            attempt + 1,
            group[0]!.error,
          ),
      })
    await this.#move(d, moves)

    if (this.log.isLevelEnabled('debug')) {
      for (const r of retries)
        this.log.debug({
          event: 'checker.retry',
          check: task.name,
          registration_id: r.id,
          attempts: attempt + 1,
          err: r.error,
        })
      for (const g of parks.values())
        for (const id of g.ids)
          this.log.debug({ event: 'checker.parked', check: task.name, registration_id: id, reason: g.reason })
    }
    for (const r of dead)
      this.log.warn({
        event: 'checker.dead_letter',
        check: task.name,
        registration_id: r.id,
        attempts: attempt + 1,
        err: r.error,
      })
  }

  /** Runs every move; retries the refused ones (with backoff) while the delivery is held. */
  async #move(d: Delivery, moves: Move[]): Promise<void> {
    let pending = moves
    let delay = 200
    const giveUpAt = Date.now() + MAX_HOLD_MS
    for (let round = 1; pending.length > 0; round++) {
      const settled = await Promise.allSettled(pending.map((m) => m.run()))
      const refused = pending.filter((_, i) => settled[i]!.status === 'rejected')
      if (refused.length === 0) return
      const err = (settled.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason as Error
      if (this.#stopping || !this.consumer.isLive(d) || Date.now() + delay > giveUpAt) throw err
      if (round === 1 || round % 10 === 0)
        this.log.warn({
          event: 'checker.move_refused',
          check: this.task.name,
          refused: refused.map((m) => m.what),
          records: refused.reduce((a, m) => a + m.ids.length, 0),
          moved: moves.length - refused.length,
          round,
          err: err.message,
        })
      await sleep(delay)
      delay = Math.min(delay * 2, 5000)
      pending = refused
    }
  }
}
