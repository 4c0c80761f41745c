import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import {
  advanceWatermark,
  databaseNow,
  dropRecorderHold,
  expireRecorderHolds,
  liveRecorderHolds,
  writeRecorderHold,
} from '../../db/intake-watermark.js'
import type { Pool } from '../../db/pool.js'
import { Periodic } from '../../lib/periodic.js'
import type { MqClient } from '../../mq/connection.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'

export interface WatermarkOptions {
  /** How often this recorder writes what it holds. */
  heartbeatMs: number
  /** How often it tries to move the watermark. */
  everyMs: number
  /**
   * How long after its receive time a registration can still be put into an intake queue: the
   * gateway's request timeout and confirm timeout, and the gateways' clock skew. Below `now − margin`
   * nothing more can arrive (SABT_INTAKE_WATERMARK_MARGIN_MS).
   */
  marginMs: number
  /** A heartbeat older than this is a recorder gone: its deliveries are back with the broker. */
  expiryMs: number
  /** How long a delivery the broker has sent may take to reach a recorder's heap. */
  graceMs: number
}

export type WatermarkRound =
  | { outcome: 'advanced'; watermark: Date | null }
  | { outcome: 'queued' | 'dead_letters' | 'broker' | 'heartbeats' }

/**
 * The intake watermark (decision 022), moved by the recorders: every registration received before
 * it is in PostgreSQL. One round, from any recorder (they agree: the update only moves it
 * forward), reads at t0 that no intake queue holds a message ready and the intake dead letters are
 * empty, then waits for every live recorder's heartbeat describing a moment after those reads (a
 * message not ready was delivered: a recorder holds it, or committed it); the watermark goes to
 * `t0 − margin`, or to the oldest registration a recorder still holds if that is earlier. A
 * recorder gone stops writing its heartbeat and blocks every round until its row expires — by
 * then the broker has its deliveries back (AMQP heartbeat 5 s), ready or held by another recorder.
 */
export class IntakeWatermark {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
  readonly #beat: Periodic<void>
  readonly #round: Periodic<WatermarkRound>
  #fenceTimer: NodeJS.Timeout | null = null
  #lastBeat = Date.now()
  #fenced = false

  constructor(
    readonly deps: { mq: MqClient; pool: Pool; metrics: Metrics; log: Logger },
    /** What this recorder holds unacked now: how many, and the oldest receive time (ms; -Infinity: unreadable). */
    readonly holding: () => { held: number; oldest: number | null },
    readonly opts: WatermarkOptions,
    /**
     * A heartbeat not written for half the expiry: the others will soon take this recorder for
     * gone, so it gives back what it holds and stops consuming (`lost`) until one is written again
     * (`regained`).
     */
    readonly fence: { lost(): Promise<void>; regained(): Promise<void> },
  ) {
    const warn = (event: string) => (err: unknown) => deps.log.warn({ event, err: (err as Error).message })
    this.#beat = new Periodic(() => this.beat(), opts.heartbeatMs, warn('watermark.heartbeat_failed'))
    this.#round = new Periodic(() => this.round(), opts.everyMs, warn('watermark.round_failed'))
  }

  /** Before the recorder consumes: its first heartbeat, so a round never misses it. */
  async start(): Promise<void> {
    await this.beat()
    this.#beat.start()
    this.#round.start()
    // Its own timer: a heartbeat that hangs (a database that does not answer) is one not written.
    this.#fenceTimer = setInterval(() => {
      if (this.#fenced || Date.now() - this.#lastBeat <= this.opts.expiryMs / 2) return
      this.#fenced = true
      this.deps.log.warn(
        { event: 'watermark.fenced', since_ms: Date.now() - this.#lastBeat },
        'no heartbeat written for half its expiry: giving back what this recorder holds until one is',
      )
      this.fence.lost().catch(() => {})
    }, this.opts.heartbeatMs)
    this.#fenceTimer.unref()
  }

  /** After the recorder has acked what it held: it holds nothing. */
  async stop(): Promise<void> {
    if (this.#fenceTimer) clearInterval(this.#fenceTimer)
    await this.#round.stop()
    await this.#beat.stop()
    await dropRecorderHold(this.deps.pool, this.id).catch(() => {})
  }

  /** Whether this recorder has given back its deliveries for want of a heartbeat. */
  get fenced(): boolean {
    return this.#fenced
  }

  async beat(): Promise<void> {
    const lookedAt = await databaseNow(this.deps.pool)
    const h = this.holding()
    await writeRecorderHold(this.deps.pool, this.id, h.held, h.oldest, lookedAt)
    this.#lastBeat = Date.now()
    if (this.#fenced) {
      this.#fenced = false
      this.deps.log.info({ event: 'watermark.unfenced' }, 'heartbeat written again: consuming again')
      await this.fence.regained()
    }
  }

  /** One round now (or the one in progress). */
  advance(): Promise<WatermarkRound> {
    return this.#round.run()
  }

  async round(): Promise<WatermarkRound> {
    const { mq, pool, metrics } = this.deps
    const done = (r: WatermarkRound): WatermarkRound => {
      metrics.watermarkRounds.inc({ outcome: r.outcome })
      return r
    }
    const t0 = await databaseNow(pool)
    const depths = await mq.queueDepths([...mq.names.intakeQueues, mq.names.intakeDead])
    for (const [queue, d] of depths) {
      if (!d) return done({ outcome: 'broker' })
      if (d.messages > 0) return done({ outcome: queue === mq.names.intakeDead ? 'dead_letters' : 'queued' })
    }
    const after = (await databaseNow(pool)).getTime() + this.opts.graceMs
    const deadline = Date.now() + this.opts.graceMs + 3 * this.opts.heartbeatMs
    await expireRecorderHolds(pool, this.opts.expiryMs)
    let holds = await liveRecorderHolds(pool)
    while (holds.some((h) => h.writtenAt.getTime() <= after)) {
      if (Date.now() > deadline) return done({ outcome: 'heartbeats' })
      await new Promise((r) => setTimeout(r, Math.max(20, this.opts.heartbeatMs / 4)))
      holds = await liveRecorderHolds(pool)
    }
    let to = t0.getTime() - this.opts.marginMs
    for (const h of holds) if (h.oldest !== null && h.oldest < to) to = h.oldest
    if (!Number.isFinite(to)) return done({ outcome: 'heartbeats' })
    const watermark = await advanceWatermark(pool, new Date(to))
    if (watermark) metrics.watermarkLag.set(Math.max(0, (Date.now() - watermark.getTime()) / 1000))
    return done({ outcome: 'advanced', watermark })
  }
}
