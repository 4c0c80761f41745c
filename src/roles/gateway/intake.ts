import type { Registration } from '../../domain/registration.js'
import { newUuidV7 } from '../../domain/uuid7.js'
import { ApiError, type ErrorCode } from '../../http/errors.js'
import type { MqClient } from '../../mq/connection.js'
import { encodeIntakeMessage } from '../../mq/messages.js'
import { PublishError, type Publisher, type PublishFailure } from '../../mq/publisher.js'
import { shardKey } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import type { Sealer } from '../../privacy/sealing.js'

const FAILURE_CODES: Record<PublishFailure, ErrorCode> = {
  unavailable: 'SABT_BROKER_UNAVAILABLE',
  blocked: 'SABT_BROKER_UNAVAILABLE',
  closed: 'SABT_BROKER_UNAVAILABLE',
  overloaded: 'SABT_OVERLOADED',
  nack: 'SABT_QUEUE_FULL',
  returned: 'SABT_UNROUTABLE',
  timeout: 'SABT_CONFIRM_TIMEOUT',
}

/** FNV-1a: a cheap, stable hash so one person's submissions always land in the same intake shard. */
export function shardOf(campaign: string, nationalId: string, shards: number): number {
  if (shards === 1) return 0
  let h = 0x811c9dc5
  const s = `${campaign}\u0000${nationalId}`
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % shards
}

/**
 * Hands a validated registration to the broker: mints its UUIDv7, publishes the intake message
 * (persistent, mandatory) and resolves only when the broker has confirmed it into a queue. With a
 * sealer (SABT_SEAL_AT=gateway) the national id and mobile are sealed first, so they never sit on
 * the broker in clear; without, the recorder seals them (decision 014: the default, because the
 * gateway's CPU is the surge's front door).
 */
export class Intake {
  readonly #accepted = new Map<string, { inc(): void }>()
  /** Decided once: at info level the hot path does not even build the debug line. */
  readonly #debug: Logger | null

  constructor(
    readonly mq: MqClient,
    readonly publisher: Publisher,
    readonly metrics: Metrics,
    readonly sealer: Sealer | null,
    readonly opts: { shards: number; retryAfterS: number; log?: Logger },
  ) {
    this.#debug = opts.log?.isLevelEnabled('debug') ? opts.log : null
  }

  get ready(): boolean {
    return this.publisher.ready
  }

  async submit(reg: Registration): Promise<string> {
    const id = newUuidV7()
    const body = encodeIntakeMessage(this.sealer, id, Date.now(), reg)
    const shard = shardOf(reg.campaign, reg.national_id, this.opts.shards)
    try {
      await this.publisher.publish(this.mq.names.intakeExchange, shardKey(shard), body, { messageId: id })
    } catch (err) {
      if (err instanceof PublishError) {
        this.metrics.intakeShed.inc({ reason: err.kind })
        throw new ApiError(FAILURE_CODES[err.kind], undefined, this.opts.retryAfterS)
      }
      throw err
    }
    let accepted = this.#accepted.get(reg.campaign)
    if (!accepted) {
      accepted = this.metrics.intakeAccepted.labels({ campaign: reg.campaign })
      this.#accepted.set(reg.campaign, accepted)
    }
    accepted.inc()
    this.#debug?.debug({ event: 'intake.accepted', registration_id: id, campaign: reg.campaign, shard })
    return id
  }
}
