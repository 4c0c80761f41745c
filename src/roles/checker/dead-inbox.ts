import { configuredFor, firstChecks, type SabtConfig } from '../../config/campaigns.js'
import { recordCallbacksDead, recordDead } from '../../db/checks.js'
import { NOTICE_KINDS, recordNoticesDead, recordOtpsDead } from '../../db/citizen.js'
import type { Pool } from '../../db/pool.js'
import { isFinal } from '../../domain/verdict.js'
import type { MqClient } from '../../mq/connection.js'
import { Consumer, type Delivery } from '../../mq/consumer.js'
import { ATTEMPT_HEADER, type CheckMessage, encodeCheckBatch, parseCheckMessage } from '../../mq/messages.js'
import { CALLBACK, SMS_ROUTES } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import { HOLD_MS, Holds } from './held.js'
import { CHECK_HEADER, DEAD_AT_HEADER, headerNumber, LAST_ERROR_HEADER, type Redirector } from './redirect.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** How a message came to be a dead letter: its attempts, the error to book, and who sent it. */
export interface Death {
  attempts: number
  error: string
  route: 'checker' | 'broker'
}

/**
 * Why a message is dead. The checker's own dead letters say so in their headers; RabbitMQ's own
 * (a check or callback queue's delivery limit reached, a message refused unread) carry `x-death`,
 * most recent first.
 */
export function deathOf(d: Delivery): Death {
  const h = d.msg.properties.headers ?? {}
  const attempts = headerNumber(d, ATTEMPT_HEADER)
  const last = typeof h[LAST_ERROR_HEADER] === 'string' ? (h[LAST_ERROR_HEADER] as string) : null
  if (h[CHECK_HEADER] !== undefined) return { attempts, error: last ?? 'dead-lettered', route: 'checker' }
  const deaths = Array.isArray(h['x-death']) ? (h['x-death'] as { reason?: unknown }[]) : []
  const reason = String(deaths[0]?.reason ?? h['x-first-death-reason'] ?? 'unknown')
  const error =
    reason === 'delivery_limit'
      ? `RabbitMQ's delivery limit reached: the checker could not settle the message${last ? ` (last error: ${last})` : ''}`
      : reason === 'rejected'
        ? 'refused unread by the checker'
        : `dead-lettered by RabbitMQ (${reason})`
  return { attempts, error, route: 'broker' }
}

/**
 * The dead-letter inbox: every dead letter of a check or a callback arrives here first, whatever
 * sent it — the checker after the last attempt or a permanent error, or RabbitMQ itself — and is
 * booked before it is kept in `sabt.dead` for `sabt dead list` and replay:
 * - a check: `error` on the check, the verdict recomputed (`failed` until replayed) — from the
 *   campaign's checks in this configuration; a campaign or check it lacks holds the dead letter
 *   in a delay tier (never "no checks required"), counted and on the dashboard;
 * - a check that had an answer after all (its message died of follow-ups that kept being
 *   refused): back to its queue, where the answer is found and what follows from it is sent;
 * - a callback: `error`, unless it was sent meanwhile;
 * - a message that cannot be read: kept as it is.
 * Booking is idempotent; when the database or the broker is down, the dead letter is held here
 * (unacked) and tried again.
 */
export class DeadLetterInbox {
  readonly consumer: Consumer
  readonly #inFlight = new Set<Promise<void>>()
  readonly #holds: Holds
  #stopping = false

  constructor(
    readonly deps: { mq: MqClient; pool: Pool; config: SabtConfig; metrics: Metrics; log: Logger },
    readonly redirect: Redirector,
  ) {
    this.#holds = new Holds(deps.metrics, deps.log)
    this.consumer = new Consumer(
      deps.mq,
      { name: 'checker.dead-inbox', queues: [deps.mq.names.deadInbox], prefetch: 16 },
      (d) => this.#track(d),
      deps.log,
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

  #track(d: Delivery): void {
    const p = this.#handle(d).catch((err: unknown) =>
      this.deps.log.error({ event: 'checker.dead_inbox_unhandled', err: (err as Error).message }),
    )
    this.#inFlight.add(p)
    p.finally(() => this.#inFlight.delete(p))
  }

  async #handle(d: Delivery): Promise<void> {
    const msg = parseCheckMessage(d.msg.content)
    const death = deathOf(d)
    for (let delay = 200; ; delay = Math.min(delay * 2, 5000)) {
      try {
        await this.#book(d, msg, death)
        this.consumer.ack(d)
        return
      } catch (err) {
        if (this.#stopping || !this.consumer.isLive(d)) return // unacked: RabbitMQ hands it out again
        this.deps.log.warn({
          event: 'checker.dead_letter_unbooked',
          check: msg?.check ?? null,
          records: msg?.ids.length ?? 0,
          retry_in_ms: delay,
          err: (err as Error).message,
        })
        await sleep(delay)
      }
    }
  }

  async #book(d: Delivery, msg: CheckMessage | null, death: Death): Promise<void> {
    const { pool, config, metrics, log } = this.deps
    const original = d.msg.properties.headers ?? {}
    const { tier: _tier, ...rest } = original
    const headers: Record<string, unknown> = {
      ...rest,
      [CHECK_HEADER]: msg?.check ?? original[CHECK_HEADER] ?? 'unreadable',
      [ATTEMPT_HEADER]: death.attempts,
      [LAST_ERROR_HEADER]: death.error.slice(0, 500),
      [DEAD_AT_HEADER]: original[DEAD_AT_HEADER] ?? new Date().toISOString(),
    }
    const messageId = String(d.msg.properties.messageId ?? `dead:${Date.now()}:${Math.random()}`)
    if (!msg) {
      await this.redirect.toDeadStore(d.msg.content, messageId, headers)
      return
    }
    if (msg.check === CALLBACK) {
      await recordCallbacksDead(pool, msg.ids, death.attempts, death.error)
      metrics.deadLetters.inc({ check: CALLBACK, route: death.route }, msg.ids.length)
      await this.redirect.toDeadStore(d.msg.content, messageId, headers)
      return
    }
    const notice = NOTICE_KINDS.find((k) => SMS_ROUTES[k] === msg.check)
    if (notice || msg.check === SMS_ROUTES.otp) {
      // A message to a citizen: `error` (listed, replayable), unless it was sent meanwhile.
      if (notice) await recordNoticesDead(pool, notice, msg.ids, death.attempts, death.error)
      else await recordOtpsDead(pool, msg.ids, death.error)
      metrics.deadLetters.inc({ check: msg.check, route: death.route }, msg.ids.length)
      await this.redirect.toDeadStore(d.msg.content, messageId, headers)
      return
    }
    const configured = configuredFor(config, msg.campaign, msg.check)
    if ('held' in configured) {
      this.#holds.hold(msg.check, msg.campaign, configured.held, msg.ids.length)
      await this.redirect.holdDeadLetter(d.msg.content, messageId, headers, this.redirect.tierFor(HOLD_MS))
      return
    }
    const keep: string[] = []
    const answered: string[] = []
    const promoted: string[] = []
    for (const id of msg.ids) {
      const booked = await recordDead(pool, {
        id,
        check: msg.check,
        attempts: death.attempts,
        lastError: death.error,
        required: configured.campaign.checks,
        maxRecordsPerPerson: configured.campaign.maxRecordsPerPerson,
      })
      if (!booked) continue // no such record (erased): nothing left to do for it
      if (!booked.answered) keep.push(id)
      else if (!isFinal(booked.status)) answered.push(id)
      for (const p of booked.promoted) promoted.push(p.id)
    }
    if (answered.length > 0) await this.redirect.toCheck(msg.check, msg.campaign, answered)
    // Records that took the place a failed one gave up (decision 015): their first checks. If this
    // fails, the dead letter is booked again and recordDead hands the same records back.
    if (promoted.length > 0)
      await Promise.all(
        firstChecks(configured.campaign).map((check) => this.redirect.toCheck(check, msg.campaign, promoted)),
      )
    if (keep.length > 0) {
      metrics.deadLetters.inc({ check: msg.check, route: death.route }, keep.length)
      metrics.checks.inc({ check: msg.check, outcome: 'error' }, keep.length)
      const body = keep.length === msg.ids.length ? d.msg.content : encodeCheckBatch({ ...msg, ids: keep })
      await this.redirect.toDeadStore(body, messageId, headers)
    }
    if (death.route === 'broker')
      log.warn(
        {
          event: 'checker.dead_letter_booked',
          check: msg.check,
          records: keep.length,
          answered: answered.length,
          err: death.error,
        },
        'a dead letter RabbitMQ sent was booked',
      )
  }
}
