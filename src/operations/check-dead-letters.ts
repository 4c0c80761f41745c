import type { SabtConfig } from '../config/campaigns.js'
import { configuredFor } from '../config/campaigns.js'
import { listDead, recordCallback, resetForReplay } from '../db/checks.js'
import { NOTICE_KINDS, noticesOwedAgain } from '../db/citizen.js'
import type { Pool } from '../db/pool.js'
import type { MqClient } from '../mq/connection.js'
import { ATTEMPT_HEADER, encodeCheckBatch, parseCheckMessage } from '../mq/messages.js'
import type { Publisher } from '../mq/publisher.js'
import { type TakenMessage, withTakenMessages } from '../mq/taken-messages.js'
import { CALLBACK, SMS_ROUTES } from '../mq/topology.js'
import type { Logger } from '../observability/logger.js'

export interface DeadList {
  /** Messages in the dead-letter queue, as RabbitMQ counts them (each may carry several records; null: broker unreachable). */
  queued: number | null
  /** Dead-lettered checks and callbacks by name, as PostgreSQL records them. */
  byCheck: Record<string, number>
  total: number
  items: {
    registration_id: string
    check: string
    attempts: number
    last_error: string | null
    dead_at: string
  }[]
}

export async function deadList(
  mq: MqClient,
  pool: Pool,
  opts: { check?: string; limit?: number } = {},
): Promise<DeadList> {
  const [queued, dead] = await Promise.all([
    mq.queueDepth(mq.names.dead),
    listDead(pool, { check: opts.check, limit: opts.limit ?? 100 }),
  ])
  return {
    queued: queued?.messages ?? null,
    byCheck: dead.byCheck,
    total: dead.total,
    items: dead.items.map((i) => ({
      registration_id: i.registration_id,
      check: i.check,
      attempts: i.attempts,
      last_error: i.last_error,
      dead_at: i.updated_at.toISOString(),
    })),
  }
}

export interface ReplayResult {
  /** Records moved back to their check's queue. */
  replayed: number
  /** Records left in the dead letters: another check, or past the limit. */
  kept: number
  /** Dead-letter messages that could not be read (left where they are). */
  unreadable: number
  /**
   * Failed records not asked again: another record of the same person has taken their place since
   * (decision 015). Taken out of the dead letters; they stay failed.
   */
  superseded: number
  /**
   * Records left in the dead letters because this process's configuration does not know their
   * campaign, or the campaign does not require their check here: never replayed (and never
   * decided) as if it required nothing.
   */
  unconfigured: number
}

/** A replayed callback is sent by the replay's own message: the sweeper leaves it this long first. */
const REPLAYED_CALLBACK_LEASE_MS = 60_000

/**
 * Moves dead-lettered checks back to their queue with fresh attempts (attempt 0). Each message is
 * republished with a confirm before it is acked from `sabt.dead`, and its record goes from `failed`
 * back to `verifying`. Messages not selected (another check, past the limit, or a campaign or
 * check this configuration lacks) are returned untouched.
 */
export async function replayDead(
  deps: { mq: MqClient; pool: Pool; publisher: Publisher; config: SabtConfig; log: Logger },
  opts: { check?: string; limit?: number } = {},
): Promise<ReplayResult> {
  const { mq, pool, publisher, config, log } = deps
  const limit = opts.limit ?? Number.POSITIVE_INFINITY
  const result: ReplayResult = { replayed: 0, kept: 0, unreadable: 0, superseded: 0, unconfigured: 0 }
  const records = (m: TakenMessage) => parseCheckMessage(m.content)?.ids.length ?? 0
  await withTakenMessages(mq, mq.names.dead, async (take, done) => {
    // Each message is looked at once; the ones skipped go back untouched at the end.
    while (result.replayed < limit) {
      const m = await take()
      if (!m) break
      const msg = parseCheckMessage(m.content)
      if (!msg) {
        result.unreadable++
        continue
      }
      if (opts.check && msg.check !== opts.check) {
        result.kept += records(m)
        continue
      }
      const configured = configuredFor(config, msg.campaign, msg.check)
      const sms = NOTICE_KINDS.find((k) => SMS_ROUTES[k] === msg.check) ?? null
      if (
        'held' in configured ||
        msg.check === SMS_ROUTES.otp || // a one-time code is short-lived: never sent late
        (msg.check !== CALLBACK && !sms && !config.checks.has(msg.check))
      ) {
        result.unconfigured += records(m)
        continue
      }
      // A message carries many records: replay up to the limit, dead-letter the rest again.
      const chosen = msg.ids.slice(0, limit - result.replayed)
      const rest = msg.ids.slice(chosen.length)
      const asked: string[] = []
      if (sms) {
        // Owed again only while still unsent (error): one sent meanwhile is superseded.
        const owed = await noticesOwedAgain(pool, sms, chosen, REPLAYED_CALLBACK_LEASE_MS)
        asked.push(...owed)
        result.superseded += chosen.length - owed.length
      }
      for (const id of sms ? [] : chosen) {
        if (msg.check === CALLBACK) {
          await recordCallback(pool, id, 'pending', 0, null, REPLAYED_CALLBACK_LEASE_MS)
          asked.push(id)
        } else if (await resetForReplay(pool, id, msg.check, configured.campaign.checks)) asked.push(id)
        else result.superseded++
      }
      const replay = { check: msg.check, campaign: msg.campaign, ids: asked }
      if (asked.length > 0)
        await publisher.publish(mq.names.checkExchange, msg.check, encodeCheckBatch(replay), {
          messageId: `${asked[0]}:${msg.check}:replay:${Date.now()}`,
          headers: { [ATTEMPT_HEADER]: 0 },
        })
      if (rest.length > 0) {
        // Booked already: straight back into `sabt.dead`, not through the inbox.
        await publisher.publish('', mq.names.dead, encodeCheckBatch({ ...replay, ids: rest }), {
          messageId: `${rest[0]}:${msg.check}:dead:${Date.now()}`,
          headers: m.headers,
        })
        result.kept += rest.length
      }
      done(m)
      result.replayed += asked.length
      for (const id of asked) log.debug({ event: 'dead.replay', registration_id: id, check: msg.check })
    }
  })
  log.info(
    { event: 'dead.replayed', ...result, check: opts.check ?? null },
    `replayed ${result.replayed} dead letter(s)`,
  )
  if (result.unconfigured > 0)
    log.warn(
      { event: 'dead.replay_unconfigured', records: result.unconfigured },
      `${result.unconfigured} dead letter(s) kept: their campaign or check is not in this configuration`,
    )
  return result
}
