import type { Registration } from '../../domain/registration.js'
import { newUuidV7 } from '../../domain/uuid7.js'
import { ApiError, type ErrorCode } from '../../http/errors.js'
import type { MqClient } from '../../mq/connection.js'
import { encodeIntakeBatch, encodeIntakeRecord } from '../../mq/messages.js'
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

interface Waiting {
  id: string
  resolve: (id: string) => void
  reject: (err: unknown) => void
}

/** One intake shard's group commit: what waits for the next message, and publishes in flight. */
class Lane {
  records: string[] = []
  waiting: Waiting[] = []
  bytes = 0
  publishing = 0
  /** When the oldest registration waiting in `records` arrived (ms). */
  oldestAt = 0
  /** Set while the lane lingers: the next message goes when it fires (or when enough arrive). */
  linger: NodeJS.Timeout | null = null
  constructor(readonly routingKey: string) {}
}

export interface IntakeOptions {
  shards: number
  retryAfterS: number
  /** Registrations waiting or in flight, in this process: past it, 503 (SABT_PUBLISH_MAX_IN_FLIGHT). */
  maxInFlight: number
  /** A message goes out at once when it holds this many registrations… */
  batchMaxRecords: number
  /** …or this many bytes, even while the shard's previous publish awaits its confirm. */
  batchMaxBytes: number
  /**
   * A shard busy enough that registrations arrived while its last publish awaited its confirm
   * waits until its oldest one has waited this long (ms), or `lingerRecords` are waiting, before
   * its next message goes (SABT_INTAKE_LINGER_MS; 0: never). An idle shard never waits.
   */
  lingerMs: number
  lingerRecords: number
  log?: Logger
}

/**
 * Hands validated registrations to the broker with group commit: every registration bound for the
 * same intake shard that arrives while the shard's previous publish awaits its confirm joins the
 * next intake message (version 3), and one confirm answers all of them. A lone request on an idle
 * shard is published at once (no added latency); under load a message holds what arrived during
 * one confirm round trip, so the batch grows by itself with the load and the broker's latency, and
 * a shard that stays busy lingers a little more (SABT_INTAKE_LINGER_MS, decision 016's addendum).
 * Each request resolves (202) only after its message's confirm, and no return; a nack, return,
 * timeout or closed channel fails every request of that message (503 + Retry-After).
 *
 * With a sealer (SABT_SEAL_AT=gateway) the national id and mobile are sealed first, so they never
 * sit on the broker in clear; without, the recorder seals them (decision 014).
 */
export class Intake {
  readonly #accepted = new Map<string, { inc(): void }>()
  /** Decided once: at info level the hot path does not even build the debug line. */
  readonly #debug: Logger | null
  readonly #lanes: Lane[]
  /** Registrations taken and not yet answered (waiting for a message, or in one being confirmed). */
  #held = 0

  constructor(
    readonly mq: MqClient,
    readonly publisher: Publisher,
    readonly metrics: Metrics,
    readonly sealer: Sealer | null,
    readonly opts: IntakeOptions,
  ) {
    this.#debug = opts.log?.isLevelEnabled('debug') ? opts.log : null
    this.#lanes = Array.from({ length: opts.shards }, (_, i) => new Lane(shardKey(i)))
    metrics.inFlightSources.set('intake_registrations', () => this.#held)
  }

  get ready(): boolean {
    return this.publisher.ready
  }

  /** Resolves with the registration's id once the broker has confirmed it; rejects with an ApiError (503). */
  submit(reg: Registration): Promise<string> {
    if (this.#held >= this.opts.maxInFlight) return this.#shed('overloaded')
    const id = newUuidV7()
    const record = encodeIntakeRecord(this.sealer, id, Date.now(), reg)
    const lane = this.#lanes[shardOf(reg.campaign, reg.national_id, this.opts.shards)]!
    this.#held++
    const answered = new Promise<string>((resolve, reject) => lane.waiting.push({ id, resolve, reject }))
    if (lane.records.length === 0) lane.oldestAt = Date.now()
    lane.records.push(record)
    lane.bytes += Buffer.byteLength(record) + 1
    if (lane.records.length >= this.opts.batchMaxRecords || lane.bytes >= this.opts.batchMaxBytes)
      this.#send(lane)
    else if (
      lane.publishing === 0 &&
      (lane.linger === null || lane.records.length >= this.opts.lingerRecords)
    )
      this.#send(lane)
    return answered.then((accepted) => {
      this.#count(reg.campaign, accepted, lane)
      return accepted
    })
  }

  /** Publishes what waits in the lane as one message; when it is confirmed, the next batch goes. */
  #send(lane: Lane): void {
    if (lane.linger) {
      clearTimeout(lane.linger)
      lane.linger = null
    }
    const records = lane.records
    const waiting = lane.waiting
    lane.records = []
    lane.waiting = []
    lane.bytes = 0
    lane.publishing++
    this.metrics.intakeBatchSize.observe(records.length)
    this.publisher
      .publish(this.mq.names.intakeExchange, lane.routingKey, encodeIntakeBatch(records), {
        messageId: `${waiting[0]!.id}+${waiting.length}`,
      })
      .then(
        () => {
          this.metrics.intakeMessages.inc()
          for (const w of waiting) w.resolve(w.id)
        },
        (err: unknown) => {
          const kind = err instanceof PublishError ? err.kind : 'closed'
          this.metrics.intakeShed.inc({ reason: kind }, waiting.length)
          const failure = new ApiError(FAILURE_CODES[kind], undefined, this.opts.retryAfterS)
          for (const w of waiting) w.reject(failure)
        },
      )
      .finally(() => {
        this.#held -= waiting.length
        lane.publishing--
        if (lane.records.length > 0 && lane.publishing === 0) this.#next(lane)
      })
  }

  /**
   * The lane's publish is confirmed and registrations arrived meanwhile: the shard is busy. Unless
   * enough wait already, they linger until the oldest has waited `lingerMs` (it waited one confirm
   * round trip already), so that at moderate load a message carries more than one round trip's
   * arrivals — the per-message cost (framing, confirm, the broker's enqueue and fsync) is paid by
   * more registrations. Nobody lingers past `lingerMs` after arriving, and an idle shard never does.
   */
  #next(lane: Lane): void {
    const wait = lane.oldestAt + this.opts.lingerMs - Date.now()
    if (wait < 1 || lane.records.length >= this.opts.lingerRecords) {
      this.#send(lane)
      return
    }
    // Records leave a lane only through #send, which clears this timer: when it fires, they wait.
    lane.linger = setTimeout(() => this.#send(lane), wait)
  }

  #count(campaign: string, id: string, lane: Lane): void {
    let accepted = this.#accepted.get(campaign)
    if (!accepted) {
      accepted = this.metrics.intakeAccepted.labels({ campaign })
      this.#accepted.set(campaign, accepted)
    }
    accepted.inc()
    this.#debug?.debug({ event: 'intake.accepted', registration_id: id, campaign, shard: lane.routingKey })
  }

  #shed(kind: PublishFailure): Promise<never> {
    this.metrics.intakeShed.inc({ reason: kind })
    return Promise.reject(new ApiError(FAILURE_CODES[kind], undefined, this.opts.retryAfterS))
  }

  /** Publishes whatever still waits (a stopping gateway answers every request it took). */
  flush(): void {
    for (const lane of this.#lanes) if (lane.records.length > 0) this.#send(lane)
  }
}
