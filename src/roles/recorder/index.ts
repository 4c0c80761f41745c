import type { Campaign, SabtConfig } from '../../config/campaigns.js'
import { firstChecks } from '../../config/campaigns.js'
import { isConnectionError, type Pool } from '../../db/pool.js'
import { type RecordRow, writeRecordBatch } from '../../db/registrations.js'
import type { MqClient } from '../../mq/connection.js'
import { Consumer, type Delivery } from '../../mq/consumer.js'
import {
  ATTEMPT_HEADER,
  type CheckMessage,
  chunk,
  encodeCheckBatch,
  type IntakeMessage,
  idsPerCheckMessage,
  parseIntakeMessage,
} from '../../mq/messages.js'
import { PublishError, type Publisher } from '../../mq/publisher.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import type { Sealer } from '../../privacy/sealing.js'
import { Batcher, type FlushReason } from './batcher.js'

export interface RecorderOptions {
  prefetch: number
  batchSize: number
  batchMs: number
}

interface Pending {
  d: Delivery
  row: RecordRow | null // sealed once, reused if the write is retried
  message: IntakeMessage | null
  campaign: Campaign | null
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * The recorder: consumes the intake queue(s) and writes registrations to PostgreSQL in batches,
 * one statement per batch. A batch is acked only after its rows are committed AND the check
 * messages for its new records are publisher-confirmed, so a crash at any point means redelivery,
 * and redelivery changes nothing (primary key + ON CONFLICT).
 */
export class Recorder {
  readonly consumer: Consumer
  readonly batcher: Batcher<Pending>
  #stopping = false
  /** Channels on which a delivery was left unacked on purpose: no multiple-ack may cover it. */
  readonly #holes = new WeakSet<object>()
  /** The last batch's settlement (check confirms, then acks): the next batch settles after it. */
  #settling: Promise<void> = Promise.resolve()

  constructor(
    readonly deps: {
      mq: MqClient
      pool: Pool
      publisher: Publisher
      config: SabtConfig
      sealer: Sealer
      metrics: Metrics
      log: Logger
    },
    readonly opts: RecorderOptions,
  ) {
    this.consumer = new Consumer(
      deps.mq,
      { name: 'recorder', queues: deps.mq.names.intakeQueues, prefetch: opts.prefetch },
      (d) => this.batcher.add({ d, row: null, message: null, campaign: null }),
      deps.log,
    )
    this.batcher = new Batcher({ size: opts.batchSize, maxWaitMs: opts.batchMs }, (items, reason) =>
      this.#flush(items, reason),
    )
  }

  async start(): Promise<void> {
    await this.consumer.start()
  }

  /** Graceful stop: no new deliveries, write and ack what is held, close the channel. */
  async stop(): Promise<void> {
    this.#stopping = true
    await this.consumer.pause()
    await this.batcher.drain()
    await this.#settling
    await this.consumer.close()
  }

  async #flush(items: Pending[], reason: FlushReason): Promise<void> {
    const { metrics, log } = this.deps
    const started = process.hrtime.bigint()
    metrics.flushes.inc({ reason })
    metrics.batchSize.observe(items.length)

    const good: Pending[] = []
    for (const p of items) {
      if (!this.consumer.isLive(p.d)) continue // its channel is gone: the broker redelivers it
      if (!p.row) this.#prepare(p)
      if (p.row) good.push(p)
    }

    const written = await this.#write(good)
    const toCheck: Pending[] = []
    for (const p of written) {
      const r = p.outcome
      if (r === 'inserted' && p.item.row!.status === 'recorded') toCheck.push(p.item)
      if (r === 'redelivered-open') toCheck.push(p.item)
    }
    // Pipelined: this batch's check messages are published and confirmed while the next batch is
    // written (the writes stay one at a time, in delivery order). Settling waits for the batch
    // before it, so acks go out in delivery order and a multiple-ack never covers an earlier batch
    // that is not settled yet. Measured (npm run bench -- --only drain): the recorder spent most
    // of each flush waiting for check confirms with the database idle.
    const previous = this.#settling
    const settled = (async () => {
      const published = await this.#publishChecks(toCheck)
      await previous
      if (log.isLevelEnabled('debug')) {
        // The registration id is the correlation key from the gateway's intake.accepted onwards.
        const checked = new Set(toCheck)
        for (const p of written)
          log.debug({
            event: 'recorder.recorded',
            registration_id: p.item.row!.id,
            outcome: p.outcome,
            campaign: p.item.row!.campaign,
            checks_published: published && checked.has(p.item) ? firstChecks(p.item.campaign!) : [],
          })
      }

      // Settle: failures first (individual nacks), then everything written with one multiple-ack —
      // unless a delivery on this channel was ever left unacked (its checks unconfirmed): a
      // multiple-ack would cover it, so from then on this channel acks one by one.
      const oneByOne = written.length > 0 && this.#holes.has(written[0]!.item.d.channel)
      let maxTag: Delivery | null = null
      for (const p of written) {
        if (p.outcome === 'retry') {
          this.consumer.nack(p.item.d, true)
          continue
        }
        if (p.outcome === 'dead') {
          this.consumer.nack(p.item.d, false)
          continue
        }
        if (!published) {
          // Check messages not confirmed: leave it unacked, the broker redelivers it.
          this.#holes.add(p.item.d.channel)
          continue
        }
        if (oneByOne) {
          this.consumer.ack(p.item.d)
          continue
        }
        if (!maxTag || p.item.d.msg.fields.deliveryTag > maxTag.msg.fields.deliveryTag) maxTag = p.item.d
      }
      if (maxTag && this.consumer.isLive(maxTag)) this.consumer.ack(maxTag, true)
      metrics.flushSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9)
      if (!published)
        log.warn({ event: 'recorder.checks_unconfirmed', batch: items.length }, 'batch left unacked')
    })()
    this.#settling = settled.catch((err: unknown) =>
      log.error({ event: 'recorder.settle_failed', err: (err as Error).message }, 'settling a batch failed'),
    )
    // Two deep at most: the next flush starts when the batch before this one is settled.
    await previous
  }

  /** Parses and seals one delivery; a message that cannot be understood goes to the dead letters. */
  #prepare(p: Pending): void {
    const { config, sealer, metrics, log } = this.deps
    const m = parseIntakeMessage(p.d.msg.content)
    const campaign = m ? config.campaigns.get(m.campaign) : undefined
    // Sealed at the gateway with a key this recorder cannot open (rotation half rolled out): kept
    // in the dead letters for a replay once it has the key, never stored unreadable.
    const unknownKey = m?.v === 2 && !sealer.hasKey(m.key_id)
    if (!m || !campaign || unknownKey) {
      const reason = !m ? 'unparseable' : !campaign ? 'unknown_campaign' : 'unknown_key'
      metrics.intakeDeadLettered.inc({ reason })
      log.warn({
        event: 'recorder.dead_letter',
        reason,
        registration_id: m?.id ?? p.d.msg.properties.messageId,
      })
      this.consumer.nack(p.d, false) // → sabt.intake.dead (at-least-once dead-lettering)
      return
    }
    p.message = m
    p.campaign = campaign
    const sealed =
      m.v === 2
        ? {
            nationalIdIndex: Buffer.from(m.national_id_index, 'base64'),
            nationalIdSealed: Buffer.from(m.national_id_sealed, 'base64'),
            mobileSealed: Buffer.from(m.mobile_sealed, 'base64'),
            keyId: m.key_id,
          }
        : {
            // Version 1 (the default, SABT_SEAL_AT=recorder): sealed here.
            nationalIdIndex: sealer.blindIndex(m.national_id),
            nationalIdSealed: sealer.seal(m.national_id, `${m.id}:national_id`),
            mobileSealed: sealer.seal(m.mobile, `${m.id}:mobile`),
            keyId: sealer.currentKeyId,
          }
    p.row = {
      id: m.id,
      campaign: m.campaign,
      ...sealed,
      firstName: m.first_name,
      lastName: m.last_name,
      birthDate: m.birth_date,
      attributes: m.attributes === null ? null : JSON.stringify(m.attributes),
      receivedAt: m.received_at,
      status: campaign.checks.length > 0 ? 'recorded' : 'accepted',
      maxRecordsPerPerson: campaign.maxRecordsPerPerson,
    }
  }

  /**
   * Writes the batch in one statement. PostgreSQL unreachable → wait and retry the same batch
   * (unacked, so nothing is lost if we die meanwhile). A data error → write row by row, so one bad
   * message does not hold back the others.
   */
  async #write(items: Pending[]): Promise<
    {
      item: Pending
      outcome:
        | 'inserted'
        | 'duplicate'
        | 'waiting'
        | 'redelivered-open'
        | 'redelivered-done'
        | 'retry'
        | 'dead'
    }[]
  > {
    if (items.length === 0) return []
    const { pool, metrics, log } = this.deps
    let delay = 100
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
        const unmatched = new Set(out.unmatched)
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
          if (unmatched.has(id)) return { item, outcome: 'retry' as const }
          return { item, outcome: 'retry' as const }
        })
      } catch (err) {
        if (isConnectionError(err) || (err as Error).message?.includes('pool')) {
          metrics.recorderRetries.inc({ cause: 'database' })
          log.warn(
            { event: 'recorder.db_unavailable', attempt, retry_in_ms: delay, err: (err as Error).message },
            'PostgreSQL unavailable; holding the batch and retrying',
          )
          if (items.every((p) => !this.consumer.isLive(p.d))) return [] // channel gone: redelivery will redo it
          await sleep(delay)
          delay = Math.min(delay * 2, 5000)
          continue
        }
        if (items.length === 1) {
          const code = (err as { code?: string }).code ?? ''
          const permanent = code.startsWith('22') || code.startsWith('23')
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
          // Permanent: straight to the dead letters. Otherwise requeue; RabbitMQ's delivery limit
          // dead-letters it if it keeps failing.
          return [{ item: items[0]!, outcome: permanent ? 'dead' : 'retry' }]
        }
        log.warn(
          { event: 'recorder.batch_failed', size: items.length, err: (err as Error).message },
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
  async #publishChecks(items: Pending[]): Promise<boolean> {
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
    let delay = 100
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
      await sleep(delay)
      delay = Math.min(delay * 2, 5000)
    }
    return true
  }
}
