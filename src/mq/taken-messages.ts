import type { GetMessage } from 'amqplib'
import { closeWithin } from './channels.js'
import type { MqClient } from './connection.js'

/** A message taken off a queue by an operator action, held (unacked) until it is moved or given back. */
export interface TakenMessage {
  readonly content: Buffer
  readonly headers: Record<string, unknown>
  readonly messageId: string | undefined
  /** The routing key it was first published with (RabbitMQ's x-death header), else its own. */
  readonly originalRoutingKey: string | null
}

/**
 * Holds messages of a queue for an operator action (list, replay): `take()` gets the next one —
 * each at most once, never more than were there when it began — and it stays unacked while held;
 * `done(m)` acks one the action moved elsewhere (after that move was confirmed). Everything not
 * done goes back to the queue untouched at the end, whatever happened. Both dead-letter replays
 * (checks and intake) and their listings use this one loop.
 */
export async function withTakenMessages<T>(
  mq: MqClient,
  queue: string,
  work: (
    take: () => Promise<TakenMessage | null>,
    done: (m: TakenMessage) => void,
    depth: number,
  ) => Promise<T>,
  opts: { max?: number } = {},
): Promise<T> {
  const model = mq.model
  if (!model) throw new Error('RabbitMQ is not reachable')
  const ch = await model.createChannel()
  ch.on('error', () => {})
  const held = new Map<TakenMessage, GetMessage>()
  try {
    const depth = (await ch.checkQueue(queue)).messageCount
    const max = Math.min(depth, opts.max ?? Number.POSITIVE_INFINITY)
    let seen = 0
    const take = async (): Promise<TakenMessage | null> => {
      if (seen >= max) return null
      const m = await ch.get(queue, { noAck: false })
      if (!m) return null
      seen++
      const headers = (m.properties.headers ?? {}) as Record<string, unknown>
      const deaths = headers['x-death'] as { 'routing-keys'?: string[] }[] | undefined
      const taken: TakenMessage = {
        content: m.content,
        headers,
        messageId: m.properties.messageId as string | undefined,
        originalRoutingKey: deaths?.[0]?.['routing-keys']?.[0] ?? (m.fields.routingKey || null),
      }
      held.set(taken, m)
      return taken
    }
    const done = (t: TakenMessage) => {
      const m = held.get(t)
      if (!m) return
      ch.ack(m)
      held.delete(t)
    }
    return await work(take, done, depth)
  } finally {
    // Not moved: back where it was (a nack, not a reject — nothing failed, so nothing is counted).
    for (const m of held.values()) {
      try {
        ch.nack(m, false, true)
      } catch {}
    }
    await closeWithin(ch)
  }
}
