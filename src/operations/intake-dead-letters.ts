import type { MqClient } from '../mq/connection.js'
import { DEAD_REASON_HEADER, parseIntakeMessage } from '../mq/messages.js'
import type { Publisher } from '../mq/publisher.js'
import { withTakenMessages } from '../mq/taken-messages.js'
import { shardKey } from '../mq/topology.js'
import type { Logger } from '../observability/logger.js'

/**
 * The intake's dead letters: registrations the recorder could not store (a campaign missing from
 * the configuration, a key it did not have yet, a row the database refused, or too many failed
 * deliveries). Each one was answered 202, so it is kept until an operator fixes the cause and
 * replays it — never dropped.
 */
export interface IntakeDeadList {
  /** Messages in the queue (one may carry many registrations: a whole group-commit message). */
  queued: number
  /**
   * The first registrations, one per entry whatever message it came in, without personal data:
   * id, campaign, message version, when received, and why it is here when the recorder said so.
   */
  items: { id: string; campaign: string; v: number; received_at: string; reason: string | null }[]
  /** Registrations that cannot be read at all (left where they are). */
  unreadable: number
}

/** Looks at up to `limit` dead letters without taking them (all are returned to the queue). */
export async function intakeDeadList(mq: MqClient, opts: { limit?: number } = {}): Promise<IntakeDeadList> {
  const limit = opts.limit ?? 50
  return withTakenMessages(mq, mq.names.intakeDead, async (take, _done, queued) => {
    const out: IntakeDeadList = { queued, items: [], unreadable: 0 }
    while (out.items.length < limit) {
      const m = await take()
      if (!m) break
      const msg = parseIntakeMessage(m.content)
      if (!msg) {
        out.unreadable++
        continue
      }
      out.unreadable += msg.invalid.length
      const reason = m.headers[DEAD_REASON_HEADER]
      for (const r of msg.records) {
        if (out.items.length >= limit) break
        out.items.push({
          id: r.id,
          campaign: r.campaign,
          v: msg.v,
          received_at: new Date(r.received_at).toISOString(),
          reason: typeof reason === 'string' ? reason : null,
        })
      }
    }
    return out
  })
}

export interface IntakeReplayResult {
  /** Registrations handed back to the intake queue (the recorder stores them; a redelivery changes nothing). */
  replayed: number
  /** Messages left in the dead letters: unreadable, or past the limit (as the queue's depth counted them). */
  kept: number
}

/**
 * Moves intake dead letters back to the intake exchange, registration by registration: each
 * message is republished under its shard's routing key (the one it was published with) with up
 * to `limit` of its registrations — the rest of a many-record message goes back to the dead
 * letters as a message of its own — confirmed before the original is acked. A registration that
 * still cannot be stored comes back to the dead letters; none is lost on the way.
 */
export async function replayIntakeDead(
  deps: { mq: MqClient; publisher: Publisher; log: Logger },
  opts: { limit?: number } = {},
): Promise<IntakeReplayResult> {
  const { mq, publisher, log } = deps
  const limit = opts.limit ?? Number.POSITIVE_INFINITY
  // Never more than `limit` held unacked at once.
  const result = await withTakenMessages(
    mq,
    mq.names.intakeDead,
    async (take, done, queued) => {
      let replayed = 0
      let moved = 0
      while (replayed < limit) {
        const m = await take()
        if (!m) break
        const msg = parseIntakeMessage(m.content)
        if (!msg || msg.records.length === 0) continue
        const key = m.originalRoutingKey ?? shardKey(0)
        const chosen = msg.records.slice(0, limit - replayed)
        const rest = msg.records.slice(chosen.length)
        const whole = rest.length === 0 && msg.invalid.length === 0
        // A message replayed whole goes as it is (any version); a part of one as a version-3 message.
        const body = whole ? m.content : encodeRecords(chosen)
        await publisher.publish(mq.names.intakeExchange, key, body, {
          messageId: `${chosen[0]!.id}+${chosen.length}`,
        })
        if (!whole)
          await publisher.publish(mq.names.intakeDlx, key, encodeRecords([...rest, ...msg.invalid]), {
            messageId: `${m.messageId ?? chosen[0]!.id}:rest`,
            headers: m.headers,
          })
        done(m)
        if (whole) moved++ // a part of it went back to the dead letters: still one message there
        replayed += chosen.length
        for (const r of chosen)
          log.debug({ event: 'intake.replay', registration_id: r.id, campaign: r.campaign })
      }
      return { replayed, kept: queued - moved }
    },
    { max: limit },
  )
  log.info({ event: 'intake.replayed', ...result }, `replayed ${result.replayed} intake dead letter(s)`)
  return result
}

function encodeRecords(records: readonly unknown[]): Buffer {
  return Buffer.from(`{"v":3,"records":[${records.map((r) => JSON.stringify(r)).join(',')}]}`)
}
