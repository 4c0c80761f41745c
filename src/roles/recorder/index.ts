import type { Campaign } from '../../config/campaigns.js'
import { firstChecks } from '../../config/campaigns.js'
import { classifyDbError, sqlState } from '../../db/errors.js'
import { type RecordRow, writeRecordBatch } from '../../db/registrations.js'
import { Backoff } from '../../lib/backoff.js'
import { Batcher, type FlushReason } from '../../lib/batcher.js'
import { Consumer, type Delivery } from '../../mq/consumer.js'
import {
  ATTEMPT_HEADER,
  type CheckMessage,
  chunk,
  DEAD_REASON_HEADER,
  encodeCheckBatch,
  type IntakeRecord,
  idsPerCheckMessage,
  isSealedRecord,
  parseIntakeMessage,
} from '../../mq/messages.js'
import { PublishError } from '../../mq/publisher.js'
import { sealPersonal } from '../../privacy/personal-fields.js'
import { type RoleContext, type RoleDeps, roleDeps } from '../role.js'
import { IntakeWatermark, type WatermarkOptions } from './intake-watermark.js'

export interface RecorderOptions {
  prefetch: number
  batchSize: number
  batchMs: number
  /** The intake queues' delivery limit (SABT_INTAKE_DELIVERY_LIMIT): past it RabbitMQ dead-letters a message whole. */
  deliveryLimit: number
  /** Its heartbeat and the rounds that move the intake watermark (decision 022). */
  watermark: WatermarkOptions
}

/** Why a registration goes to the intake dead letters (the metric's and the header's reason). */
type DeadReason = 'unparseable' | 'unknown_campaign' | 'unknown_key' | 'data_error' | 'write_failed'

/** One registration of an intake message. */
interface Rec {
  d: Delivery
  /** As it came: what goes to the dead letters if this one record cannot be stored. */
  raw: unknown
  row: RecordRow | null // sealed once, reused if the write is retried
  campaign: Campaign | null
  dead: DeadReason | null
}

/**
 * One intake message: a version-1/2 message carries one registration, a version-3 message (the
 * gateway's group commit) many. It is acked once every one of its registrations is committed (and
 * its check messages confirmed), or dead-lettered alone.
 */
interface Pending {
  d: Delivery
  /** Null until read; 'none' when the message is not an intake message at all. */
  v: 1 | 2 | 3 | 'none' | null
  recs: Rec[]
}

type WriteOutcome =
  | 'inserted'
  | 'duplicate'
  | 'waiting'
  | 'redelivered-open'
  | 'redelivered-done'
  | 'retry'
  | 'dead'

/**
 * The recorder: consumes the intake queue(s) and writes registrations to PostgreSQL in batches,
 * one statement per batch. A batch is acked only after its rows are committed AND the check
 * messages for its new records are publisher-confirmed, so a crash at any point means redelivery,
 * and redelivery changes nothing (primary key + ON CONFLICT).
 */
export class Recorder {
  readonly consumer: Consumer
  readonly batcher: Batcher<Pending>
  readonly watermark: IntakeWatermark
  #stopping = false
  /** Channels on which a delivery was left unacked on purpose: no multiple-ack may cover it. */
  readonly #holes = new WeakSet<object>()
  /** Deliveries not acked yet, with their oldest registration's receive time (the intake watermark's). */
  readonly #held = new Map<Delivery, number>()
  /** The last batch's settlement (check confirms, then acks): the next batch settles after it. */
  #settling: Promise<void> = Promise.resolve()

  constructor(
    readonly deps: RoleDeps,
    readonly opts: RecorderOptions,
  ) {
    this.consumer = new Consumer(
      deps.mq,
      { name: 'recorder', queues: deps.mq.names.intakeQueues, prefetch: opts.prefetch },
      (d) => {
        const p: Pending = { d, v: null, recs: [] }
        this.#held.set(d, oldestReceived(this.#read(p)))
        this.batcher.add(p)
      },
      deps.log,
    )
    this.watermark = new IntakeWatermark(deps, () => this.holding(), opts.watermark, {
      lost: async () => {
        await this.consumer.pause()
        await this.consumer.recover() // the broker has them back: ready, or another recorder's
      },
      regained: () => (this.#stopping ? Promise.resolve() : this.consumer.resume()),
    })
    this.batcher = new Batcher(
      {
        size: opts.batchSize,
        maxWaitMs: opts.batchMs,
        // A batch is counted in registrations, and a message's registrations stay in one batch.
        weigh: (p) => this.#read(p).recs.length || 1,
        // Its deliveries are unacked and nobody holds them any more: close the channel so the
        // broker gives them to us again (redelivery changes nothing).
        onError: (err, items) => {
          deps.log.error(
            { event: 'recorder.flush_failed', batch: items.length, err: (err as Error).message },
            'a batch failed unexpectedly; taking its deliveries back from the broker',
          )
          this.consumer.recover().catch(() => {})
        },
      },
      (items, reason) => this.#flush(items, reason),
    )
  }

  /** Its first heartbeat before its first delivery: a watermark round never misses what it holds. */
  async start(): Promise<void> {
    await this.watermark.start()
    await this.consumer.start()
  }

  /** Graceful stop: no new deliveries, write and ack what is held, close the channel. */
  async stop(): Promise<void> {
    this.#stopping = true
    await this.consumer.pause()
    await this.batcher.drain()
    await this.#settling
    await this.consumer.close()
    await this.watermark.stop()
  }

  /**
   * What this recorder holds unacked (the intake watermark's heartbeat): deliveries of a channel
   * that is gone are the broker's again, not counted.
   */
  holding(): { held: number; oldest: number | null } {
    let oldest: number | null = null
    for (const [d, at] of this.#held) {
      if (!this.consumer.isLive(d)) {
        this.#held.delete(d)
        continue
      }
      if (oldest === null || at < oldest) oldest = at
    }
    return { held: this.#held.size, oldest }
  }

  async #flush(items: Pending[], reason: FlushReason): Promise<void> {
    const { metrics, log } = this.deps
    const started = process.hrtime.bigint()
    metrics.flushes.inc({ reason })

    const live: Pending[] = []
    const good: Rec[] = []
    for (const p of items) {
      if (!this.consumer.isLive(p.d)) continue // its channel is gone: the broker redelivers it
      this.#read(p)
      live.push(p)
      for (const r of p.recs) if (r.row && !r.dead) good.push(r)
    }
    metrics.batchSize.observe(good.length)

    const written = await this.#write(good)
    const outcomeOf = new Map<Rec, WriteOutcome>()
    const toCheck: Rec[] = []
    for (const w of written) {
      outcomeOf.set(w.item, w.outcome)
      if (w.outcome === 'inserted' && w.item.row!.status === 'recorded') toCheck.push(w.item)
      if (w.outcome === 'redelivered-open') toCheck.push(w.item)
      if (w.outcome === 'dead') w.item.dead = 'data_error'
    }
    // A registration of a many-record message that still fails to be written on its message's
    // last delivery goes to the dead letters alone: requeued once more, RabbitMQ would dead-letter
    // the whole message, the others (stored) with it.
    if (written.some((w) => w.outcome === 'retry'))
      for (const p of live)
        if (p.v === 3 && this.#lastDelivery(p.d))
          for (const r of p.recs) if (outcomeOf.get(r) === 'retry') r.dead = 'write_failed'
    // A registration of a many-record message that cannot be stored goes to the dead letters on
    // its own (confirmed before its message is acked); a one-record message goes there whole.
    const alone: Rec[] = []
    for (const p of live) if (p.v === 3) for (const r of p.recs) if (r.dead) alone.push(r)

    // Pipelined: this batch's check messages are published and confirmed while the next batch is
    // written (the writes stay one at a time, in delivery order). Settling waits for the batch
    // before it, so acks go out in delivery order and a multiple-ack never covers an earlier batch
    // that is not settled yet. Measured (npm run bench -- --only drain): the recorder spent most
    // of each flush waiting for check confirms with the database idle.
    const previous = this.#settling
    const settled = (async () => {
      const [published, parked] = await Promise.all([
        this.#publishChecks(toCheck),
        this.#deadLetterAlone(alone),
      ])
      await previous
      if (log.isLevelEnabled('debug')) {
        // The registration id is the correlation key from the gateway's intake.accepted onwards.
        const checked = new Set(toCheck)
        for (const w of written)
          log.debug({
            event: 'recorder.recorded',
            registration_id: w.item.row!.id,
            outcome: w.outcome,
            campaign: w.item.row!.campaign,
            checks_published: published && checked.has(w.item) ? firstChecks(w.item.campaign!) : [],
          })
      }

      // Settle each message: dead-lettered whole (one-record messages), requeued whole when one
      // of its registrations must be tried again (a redelivery changes nothing for the others),
      // left unacked when its check messages (or a record's dead letter) went unconfirmed, else
      // acked — all the acked ones with one multiple-ack, unless a delivery on this channel was
      // ever left unacked (a multiple-ack would cover it): from then on this channel acks one by one.
      const oneByOne = live.length > 0 && this.#holes.has(live[0]!.d.channel)
      let maxTag: Delivery | null = null
      const settledHere: Delivery[] = []
      for (const p of live) {
        if (p.v !== 3 && p.recs.some((r) => r.dead)) {
          this.consumer.nack(p.d, false) // → sabt.intake.dead (at-least-once dead-lettering)
          settledHere.push(p.d)
          continue
        }
        if (p.recs.some((r) => outcomeOf.get(r) === 'retry' && !r.dead)) {
          this.consumer.nack(p.d, true)
          settledHere.push(p.d)
          continue
        }
        if (!published || !parked) {
          this.#holes.add(p.d.channel) // the broker redelivers it
          continue
        }
        settledHere.push(p.d)
        if (oneByOne) {
          this.consumer.ack(p.d)
          continue
        }
        if (!maxTag || p.d.msg.fields.deliveryTag > maxTag.msg.fields.deliveryTag) maxTag = p.d
      }
      if (maxTag && this.consumer.isLive(maxTag)) this.consumer.ack(maxTag, true)
      // Acked, or back with the broker (ready, or dead-lettered): this recorder no longer holds them.
      for (const d of settledHere) this.#held.delete(d)
      metrics.flushSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9)
      if (!published || !parked)
        log.warn({ event: 'recorder.checks_unconfirmed', batch: live.length }, 'batch left unacked')
    })()
    this.#settling = settled.catch((err: unknown) =>
      log.error({ event: 'recorder.settle_failed', err: (err as Error).message }, 'settling a batch failed'),
    )
    // Two deep at most: the next flush starts when the batch before this one is settled.
    await previous
  }

  /** Reads a message once: its registrations, each parsed, its campaign found, sealed. */
  #read(p: Pending): Pending {
    if (p.v !== null) return p
    const { metrics, log } = this.deps
    const parsed = parseIntakeMessage(p.d.msg.content)
    if (!parsed) {
      p.v = 'none'
      p.recs = [{ d: p.d, raw: null, row: null, campaign: null, dead: 'unparseable' }]
      metrics.intakeDeadLettered.inc({ reason: 'unparseable' })
      log.warn({
        event: 'recorder.dead_letter',
        reason: 'unparseable',
        registration_id: p.d.msg.properties.messageId,
      })
      return p
    }
    p.v = parsed.v
    for (const raw of parsed.invalid) {
      metrics.intakeDeadLettered.inc({ reason: 'unparseable' })
      log.warn({
        event: 'recorder.dead_letter',
        reason: 'unparseable',
        message_id: p.d.msg.properties.messageId,
      })
      p.recs.push({ d: p.d, raw, row: null, campaign: null, dead: 'unparseable' })
    }
    for (const record of parsed.records) p.recs.push(this.#prepare(p.d, record))
    return p
  }

  /** One registration: its campaign and key known, sealed into a row; or why it cannot be stored. */
  #prepare(d: Delivery, m: IntakeRecord): Rec {
    const { config, sealer, metrics, log } = this.deps
    const campaign = config.campaigns.get(m.campaign)
    // Sealed at the gateway with a key this recorder cannot open (rotation half rolled out): kept
    // in the dead letters for a replay once it has the key, never stored unreadable.
    const sealed = isSealedRecord(m)
    const dead: DeadReason | null = !campaign
      ? 'unknown_campaign'
      : sealed && !sealer.hasKey(m.key_id)
        ? 'unknown_key'
        : null
    if (dead || !campaign) {
      metrics.intakeDeadLettered.inc({ reason: dead! })
      log.warn({ event: 'recorder.dead_letter', reason: dead, registration_id: m.id })
      return { d, raw: m, row: null, campaign: null, dead }
    }
    const personal = sealed
      ? {
          nationalIdIndex: Buffer.from(m.national_id_index, 'base64'),
          nationalIdSealed: Buffer.from(m.national_id_sealed, 'base64'),
          mobileSealed: Buffer.from(m.mobile_sealed, 'base64'),
          keyId: m.key_id,
        }
      : {
          // Clear (the default, SABT_SEAL_AT=recorder): sealed here.
          ...sealPersonal(sealer, m.id, m),
        }
    return {
      d,
      raw: m,
      campaign,
      dead: null,
      row: {
        id: m.id,
        campaign: m.campaign,
        ...personal,
        firstName: m.first_name,
        lastName: m.last_name,
        birthDate: m.birth_date,
        attributes: m.attributes === null ? null : JSON.stringify(m.attributes),
        receivedAt: m.received_at,
        status: campaign.checks.length > 0 ? 'recorded' : 'accepted',
        maxRecordsPerPerson: campaign.maxRecordsPerPerson,
      },
    }
  }

  /** Whether a requeue of this delivery would pass the queue's delivery limit (x-delivery-count: returns so far). */
  #lastDelivery(d: Delivery): boolean {
    const count = Number(d.msg.properties.headers?.['x-delivery-count'] ?? 0)
    return count >= this.opts.deliveryLimit
  }

  /**
   * Registrations of many-record messages that cannot be stored, each to the intake dead letters
   * as its own one-record message (replayable alone), published to the dead-letter exchange under
   * its message's routing key and confirmed. False if any went unconfirmed (its message stays unacked).
   */
  async #deadLetterAlone(recs: Rec[]): Promise<boolean> {
    if (recs.length === 0) return true
    const { publisher, mq, metrics, log } = this.deps
    const results = await Promise.allSettled(
      recs.map((r) => {
        if (r.dead === 'data_error') metrics.intakeDeadLettered.inc({ reason: 'data_error' })
        const id = (r.raw as { id?: unknown } | null)?.id
        return publisher.publish(
          mq.names.intakeDlx,
          r.d.msg.fields.routingKey,
          Buffer.from(`{"v":3,"records":[${JSON.stringify(r.raw)}]}`),
          {
            messageId: typeof id === 'string' ? id : `${r.d.msg.properties.messageId}:invalid`,
            headers: { [DEAD_REASON_HEADER]: r.dead },
          },
        )
      }),
    )
    const failed = results.filter((x) => x.status === 'rejected').length
    if (failed > 0)
      log.warn(
        { event: 'recorder.dead_letter_unconfirmed', failed },
        'dead letters not confirmed; message left unacked',
      )
    return failed === 0
  }

  /**
   * Writes the batch in one statement. The database unable to take it as a whole (unreachable,
   * read-only after a failover, disk full, a deadlock or timeout: src/db/errors.ts) → wait with
   * backoff and retry the same batch, unacked, so nothing is lost if we die meanwhile and no
   * delivery attempt is spent. A row the database refuses (its data) → write row by row, so the
   * bad one goes to the dead letters alone and never holds back the others.
   */
  async #write(items: Rec[]): Promise<{ item: Rec; outcome: WriteOutcome }[]> {
    if (items.length === 0) return []
    const { pool, metrics, log } = this.deps
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 })
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await writeRecordBatch(
          pool,
          items.map((p) => p.row!),
        )
        metrics.rowsWritten.inc({ kind: 'registration' }, out.inserted.length)
        metrics.rowsWritten.inc({ kind: 'duplicate' }, out.duplicates.size)
        metrics.rowsWritten.inc({ kind: 'redelivered' }, out.redelivered.length)
        metrics.rowsWritten.inc({ kind: 'waiting' }, out.waiting.length)
        const inserted = new Set(out.inserted)
        const waiting = new Set(out.waiting)
        const redelivered = new Map(out.redelivered.map((r) => [r.id, r.status]))
        return items.map((item) => {
          const id = item.row!.id
          if (inserted.has(id)) return { item, outcome: 'inserted' as const }
          if (out.duplicates.has(id)) return { item, outcome: 'duplicate' as const }
          // Kept beside the person's record being checked: checked only if that one gives up its place.
          if (waiting.has(id)) return { item, outcome: 'waiting' as const }
          const st = redelivered.get(id)
          if (st !== undefined)
            return {
              item,
              outcome:
                st === 'recorded' || st === 'verifying'
                  ? ('redelivered-open' as const)
                  : ('redelivered-done' as const),
            }
          // Neither written nor matched (the row it conflicted with vanished meanwhile): again.
          return { item, outcome: 'retry' as const }
        })
      } catch (err) {
        const kind = classifyDbError(err)
        const code = sqlState(err)
        if (kind === 'unavailable') {
          metrics.recorderRetries.inc({ cause: 'database' })
          const wait = backoff.next()
          log.warn(
            {
              event: 'recorder.db_unavailable',
              attempt,
              retry_in_ms: wait,
              code,
              err: (err as Error).message,
            },
            'PostgreSQL cannot take writes; holding the batch and retrying',
          )
          if (this.#stopping || items.every((p) => !this.consumer.isLive(p.d))) return [] // the broker redelivers them
          await new Promise((r) => setTimeout(r, wait))
          continue
        }
        if (items.length === 1) {
          const permanent = kind === 'data'
          metrics.intakeDeadLettered.inc({ reason: permanent ? 'data_error' : 'write_failed' })
          log.warn(
            {
              event: 'recorder.row_failed',
              registration_id: items[0]!.row!.id,
              code,
              permanent,
              err: (err as Error).message,
            },
            'a registration could not be written',
          )
          // Its data: straight to the dead letters. Otherwise requeue; the delivery limit
          // dead-letters it if it keeps failing.
          return [{ item: items[0]!, outcome: permanent ? 'dead' : 'retry' }]
        }
        log.warn(
          { event: 'recorder.batch_failed', size: items.length, code, err: (err as Error).message },
          'writing row by row',
        )
        const results = []
        for (const p of items) results.push(...(await this.#write([p])))
        return results
      }
    }
  }

  /**
   * Publishes the first checks of the batch's new records — one message per (campaign, check)
   * carrying their ids, not one per record — and waits for every confirm.
   */
  async #publishChecks(items: Rec[]): Promise<boolean> {
    if (items.length === 0) return true
    const { publisher, mq, config, metrics, log } = this.deps
    const groups = new Map<string, CheckMessage & { seen: Set<string> }>()
    for (const p of items) {
      for (const check of firstChecks(p.campaign!)) {
        const key = `${p.campaign!.slug}\u0000${check}`
        let g = groups.get(key)
        if (!g) {
          g = { check, campaign: p.campaign!.slug, ids: [], seen: new Set() }
          groups.set(key, g)
        }
        if (g.seen.has(p.row!.id)) continue // a redelivery may come twice in one batch
        g.seen.add(p.row!.id)
        g.ids.push(p.row!.id)
      }
    }
    let pending: CheckMessage[] = []
    for (const g of groups.values()) {
      const size = idsPerCheckMessage(config.checks.get(g.check)!)
      for (const ids of chunk(g.ids, size)) pending.push({ check: g.check, campaign: g.campaign, ids })
    }
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 })
    while (pending.length > 0) {
      const results = await Promise.allSettled(
        pending.map((m) =>
          publisher.publish(mq.names.checkExchange, m.check, encodeCheckBatch(m), {
            messageId: `${m.ids[0]}:${m.check}:first`,
            headers: { [ATTEMPT_HEADER]: 0 },
          }),
        ),
      )
      const failed = pending.filter((_, i) => results[i]!.status === 'rejected')
      if (failed.length === 0) return true
      const kind = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason
      metrics.recorderRetries.inc({ cause: 'publish' })
      log.warn(
        {
          event: 'recorder.check_publish_failed',
          failed: failed.length,
          kind: kind instanceof PublishError ? kind.kind : String(kind),
        },
        'check messages not confirmed; retrying',
      )
      // If our deliveries are gone (channel closed), the broker redelivers the batch: stop here.
      if (this.#stopping || items.every((p) => !this.consumer.isLive(p.d))) return false
      pending = failed
      await backoff.wait()
    }
    return true
  }
}

/** A message's oldest registration receive time (ms); -Infinity when it could not be read. */
function oldestReceived(p: Pending): number {
  let oldest = Number.POSITIVE_INFINITY
  for (const r of p.recs) {
    if (!r.row) return Number.NEGATIVE_INFINITY
    if (r.row.receivedAt < oldest) oldest = r.row.receivedAt
  }
  return p.recs.length === 0 ? Number.NEGATIVE_INFINITY : oldest
}

/** The recorder role's start: consumes every intake shard, writes in batches. */
export async function startRecorder(ctx: RoleContext): Promise<Recorder> {
  const { env } = ctx
  const recorder = new Recorder(await roleDeps(ctx, 'recorder', 'checks'), {
    prefetch: env.SABT_RECORDER_PREFETCH,
    batchSize: env.SABT_BATCH_SIZE,
    batchMs: env.SABT_BATCH_MS,
    deliveryLimit: env.SABT_INTAKE_DELIVERY_LIMIT,
    watermark: {
      heartbeatMs: env.SABT_INTAKE_WATERMARK_HEARTBEAT_MS,
      everyMs: env.SABT_INTAKE_WATERMARK_EVERY_MS,
      marginMs: env.SABT_INTAKE_WATERMARK_MARGIN_MS,
      expiryMs: env.SABT_INTAKE_WATERMARK_EXPIRY_MS,
      graceMs: 2000,
    },
  })
  await recorder.start()
  ctx.onStop(() => recorder.stop())
  return recorder
}
