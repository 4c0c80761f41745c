import type { MqClient } from '../../mq/connection.js'
import type { Delivery } from '../../mq/consumer.js'
import { ATTEMPT_HEADER, type CheckMessage, encodeCheckBatch } from '../../mq/messages.js'
import type { Publisher } from '../../mq/publisher.js'
import { DEAD_INBOX_KEY } from '../../mq/topology.js'
import type { Metrics } from '../../observability/metrics.js'

export const PARKED_HEADER = 'x-sabt-parked'
export const LAST_ERROR_HEADER = 'x-sabt-last-error'
export const CHECK_HEADER = 'x-sabt-check'
export const DEAD_AT_HEADER = 'x-sabt-dead-at'

export function headerNumber(d: Delivery, name: string): number {
  const v = d.msg.properties.headers?.[name]
  const n = typeof v === 'number' ? v : Number(v)
  return Number.isFinite(n) && n >= 0 ? n : 0
}

/** Expire between 80 % and 100 % of the tier, so a wave of failures does not return as a wave. */
const jitter = (ms: number) => String(Math.round(ms * (0.8 + 0.2 * Math.random())))

let sequence = 0
const messageId = (m: CheckMessage, what: string) => `${m.ids[0]}:${m.check}:${what}:${++sequence}`

/**
 * Moves records of a check on and waits for the broker's confirm: to a check's queue (what an
 * answer unlocked), into a delay tier (a TTL queue that dead-letters back to the check's queue —
 * nothing waits in memory) or into the dead letters. The caller acks the original only after.
 */
export class Redirector {
  constructor(
    readonly mq: MqClient,
    readonly publisher: Publisher,
    readonly metrics: Metrics,
  ) {}

  /** The delay tier for the given wait: the smallest at least that long, else the longest. */
  tierFor(minDelayMs: number): { label: string; ms: number } {
    const tiers = this.mq.names.retryQueues
    return tiers.find((t) => t.ms >= minDelayMs) ?? tiers[tiers.length - 1]!
  }

  /** The tier after `attempts` failed attempts: 1s after the first, 10s after the second, … */
  tierAfterAttempts(attempts: number): { label: string; ms: number } {
    const tiers = this.mq.names.retryQueues
    return tiers[Math.min(Math.max(attempts, 1), tiers.length) - 1]!
  }

  async toCheck(check: string, campaign: string, ids: string[]): Promise<void> {
    const m = { check, campaign, ids }
    await this.publisher.publish(this.mq.names.checkExchange, check, encodeCheckBatch(m), {
      messageId: messageId(m, 'next'),
      headers: { [ATTEMPT_HEADER]: 0 },
    })
  }

  async toTier(
    routingKey: string,
    m: CheckMessage,
    tier: { label: string; ms: number },
    headers: { attempt: number; parked: number; lastError?: string },
    reason: 'retry' | 'circuit_open' | 'rate_limited' | 'unavailable' | 'unconfigured',
  ): Promise<void> {
    const expiration = jitter(tier.ms)
    await this.publisher.publish(this.mq.names.retryExchange, routingKey, encodeCheckBatch(m), {
      messageId: messageId(m, `tier-${headers.attempt}-${headers.parked}`),
      headers: {
        tier: tier.label,
        [ATTEMPT_HEADER]: headers.attempt,
        [PARKED_HEADER]: headers.parked,
        ...(headers.lastError ? { [LAST_ERROR_HEADER]: headers.lastError.slice(0, 500) } : {}),
      },
      expiration,
    })
    this.metrics.checkRetries.inc({ check: routingKey, tier: tier.label, reason }, m.ids.length)
  }

  /** To the dead letters: through the dead-letter inbox, where they are booked (dead-inbox.ts). */
  async toDead(check: string, m: CheckMessage, attempts: number, lastError: string): Promise<void> {
    await this.publisher.publish(this.mq.names.deadExchange, check, encodeCheckBatch(m), {
      messageId: messageId(m, 'dead'),
      headers: {
        [CHECK_HEADER]: check,
        [ATTEMPT_HEADER]: attempts,
        [LAST_ERROR_HEADER]: lastError.slice(0, 500),
        [DEAD_AT_HEADER]: new Date().toISOString(),
      },
    })
  }

  /** A booked dead letter into `sabt.dead` (default exchange: straight to the queue), to be listed and replayed. */
  async toDeadStore(body: Buffer, messageId: string, headers: Record<string, unknown>): Promise<void> {
    await this.publisher.publish('', this.mq.names.dead, body, { messageId, headers })
  }

  /** A dead letter that cannot be booked here waits in a delay tier and comes back to the inbox. */
  async holdDeadLetter(
    body: Buffer,
    messageId: string,
    headers: Record<string, unknown>,
    tier: { label: string; ms: number },
  ): Promise<void> {
    await this.publisher.publish(this.mq.names.retryExchange, DEAD_INBOX_KEY, body, {
      messageId,
      headers: { ...headers, tier: tier.label },
      expiration: jitter(tier.ms),
    })
  }
}
