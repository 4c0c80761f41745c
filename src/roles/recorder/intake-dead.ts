import type { GetMessage } from 'amqplib'
import type { MqClient } from '../../mq/connection.js'
import { parseIntakeMessage } from '../../mq/messages.js'
import type { Publisher } from '../../mq/publisher.js'
import { shardKey } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'

/**
 * The intake's dead letters: registrations the recorder could not store (a campaign missing from
 * the configuration, a key it did not have yet, a row the database refused, or too many failed
 * deliveries). Each one was answered 202, so it is kept until an operator fixes the cause and
 * replays it — never dropped.
 */
export interface IntakeDeadList {
  queued: number
  /** The first messages, without personal data: id, campaign, message version, when received. */
  items: { id: string; campaign: string; v: number; received_at: string }[]
  /** Messages that are not intake messages at all (left where they are). */
  unreadable: number
}

/** Looks at up to `limit` dead letters without taking them (all are returned to the queue). */
export async function intakeDeadList(mq: MqClient, opts: { limit?: number } = {}): Promise<IntakeDeadList> {
  return withDeadLetters(mq, opts.limit ?? 50, async (messages, queued) => {
    const out: IntakeDeadList = { queued, items: [], unreadable: 0 }
    for (const m of messages) {
      const msg = parseIntakeMessage(m.content)
      if (!msg) out.unreadable++
      else
        out.items.push({
          id: msg.id,
          campaign: msg.campaign,
          v: msg.v,
          received_at: new Date(msg.received_at).toISOString(),
        })
    }
    return out
  })
}

export interface IntakeReplayResult {
  /** Registrations handed back to the intake queue (the recorder stores them; a redelivery changes nothing). */
  replayed: number
  /** Left in the dead letters: unreadable, or past the limit (as the queue's depth counted them). */
  kept: number
}

/**
 * Moves intake dead letters back to the intake exchange, each under its shard's routing key (the
 * one it was published with), confirmed before it is acked from the dead-letter queue. A message
 * that still cannot be stored comes back to the dead letters; none is lost on the way.
 */
export async function replayIntakeDead(
  deps: { mq: MqClient; publisher: Publisher; log: Logger },
  opts: { limit?: number } = {},
): Promise<IntakeReplayResult> {
  const { mq, publisher, log } = deps
  const limit = opts.limit ?? Number.POSITIVE_INFINITY
  // Never more than `limit` held unacked at once.
  const result = await withDeadLetters(mq, limit, async (messages, queued, ack) => {
    let replayed = 0
    for (const m of messages) {
      const msg = parseIntakeMessage(m.content)
      if (!msg) continue
      const key = originalRoutingKey(m) ?? shardKey(0)
      await publisher.publish(mq.names.intakeExchange, key, m.content, { messageId: msg.id })
      ack(m)
      replayed++
      log.debug({ event: 'intake.replay', registration_id: msg.id, campaign: msg.campaign })
    }
    return { replayed, kept: queued - replayed }
  })
  log.info({ event: 'intake.replayed', ...result }, `replayed ${result.replayed} intake dead letter(s)`)
  return result
}

/** The routing key a dead-lettered message was first published with (RabbitMQ's x-death header). */
function originalRoutingKey(m: GetMessage): string | null {
  const deaths = m.properties.headers?.['x-death'] as { 'routing-keys'?: string[] }[] | undefined
  return deaths?.[0]?.['routing-keys']?.[0] ?? (m.fields.routingKey || null)
}

/**
 * Takes up to `max` messages from the intake dead-letter queue (each at most once: the ones taken
 * stay unacked meanwhile), lets `work` ack the ones it moved, and returns the rest to the queue.
 */
async function withDeadLetters<T>(
  mq: MqClient,
  max: number,
  work: (messages: GetMessage[], queued: number, ack: (m: GetMessage) => void) => Promise<T>,
): Promise<T> {
  const model = mq.model
  if (!model) throw new Error('RabbitMQ is not reachable')
  const ch = await model.createChannel()
  const held = new Set<GetMessage>()
  try {
    const depth = (await ch.checkQueue(mq.names.intakeDead)).messageCount
    for (let seen = 0; seen < Math.min(depth, max); seen++) {
      const m = await ch.get(mq.names.intakeDead, { noAck: false })
      if (!m) break
      held.add(m)
    }
    return await work([...held], depth, (m) => {
      ch.ack(m)
      held.delete(m)
    })
  } finally {
    for (const m of held) ch.nack(m, false, true)
    await ch.close().catch(() => {})
  }
}
