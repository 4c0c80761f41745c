import { createHmac } from 'node:crypto'
import { Agent, request } from 'undici'
import type { SabtConfig } from '../../config/campaigns.js'
import { configuredFor } from '../../config/campaigns.js'
import {
  loadCallbackSubject,
  loadRejectionReasons,
  recordCallback,
  recordCallbackRetries,
} from '../../db/checks.js'
import type { Pool } from '../../db/pool.js'
import { isFinal } from '../../domain/verdict.js'
import type { MqClient } from '../../mq/connection.js'
import { CALLBACK } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import { Holds } from './held.js'
import {
  classifyStatus,
  PermanentError,
  parseRetryAfter,
  RateLimitedError,
  TransientError,
} from './outcomes.js'
import type { FollowUp, Task } from './worker.js'

export const SIGNATURE_HEADER = 'x-sabt-signature'

/** `sha256=<hex HMAC-SHA256 of the raw body>` with the shared secret: how a receiver verifies us. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
}

/**
 * The optional verdict callback: when a record's verdict is final and its campaign declares
 * `callback_url`, the verdict is POSTed there, signed, and retried through the same delay tiers
 * as checks (then dead-lettered and replayable like them). What is owed is the database's
 * `callback_status = 'pending'`, not a message: a message for a callback already sent (or dead)
 * sends nothing, and the sweeper (callback-sweeper.ts) sends again a pending one whose message
 * was lost. The receiver may see a retry, with the same `Idempotency-Key`.
 */
export class CallbackTask implements Task {
  readonly name = CALLBACK
  readonly queue: string
  readonly concurrency = 16
  readonly maxAttempts = 8
  readonly idsPerMessage = 200
  readonly #agent = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
    connections: 16,
  })

  readonly #holds: Holds

  constructor(
    readonly deps: {
      mq: MqClient
      pool: Pool
      config: SabtConfig
      metrics: Metrics
      log: Logger
      secret: string
      /** How long a pending callback is left to its message before the sweeper sends it again. */
      leaseMs: number
    },
  ) {
    this.queue = deps.mq.names.callbackQueue
    this.#holds = new Holds(deps.metrics, deps.log)
  }

  async perform(id: string, campaignSlug: string, attempt: number): Promise<FollowUp[]> {
    const record = await loadCallbackSubject(this.deps.pool, id)
    // Owed only while pending: a redelivery, or a second message for it, sends nothing.
    if (record?.callback_status !== 'pending' || !isFinal(record.status)) return []
    const configured = configuredFor(this.deps.config, campaignSlug, CALLBACK)
    if ('held' in configured) throw this.#holds.hold(CALLBACK, campaignSlug, configured.held)
    const campaign = configured.campaign
    // Known, and without a callback here: a dead letter (listed, replayable once it has one again).
    if (!campaign.callbackUrl)
      throw new PermanentError(`campaign ${campaignSlug} has no callback_url in this configuration`)
    // A rejection says why: each failed check with its provider's reason code and words.
    const reasons = record.status === 'rejected' ? await loadRejectionReasons(this.deps.pool, record.id) : []
    const body = JSON.stringify({
      id: record.id,
      campaign: record.campaign,
      status: record.status,
      verdict_at: record.verdict_at?.toISOString() ?? null,
      reasons,
      sent_at: new Date().toISOString(),
    })
    let res: Awaited<ReturnType<typeof request>>
    try {
      res = await request(campaign.callbackUrl, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: {
          'content-type': 'application/json',
          'idempotency-key': `${record.id}:verdict`,
          [SIGNATURE_HEADER]: signBody(this.deps.secret, body),
        },
        body,
        signal: AbortSignal.timeout(10_000),
      })
    } catch (err) {
      throw new TransientError(`callback connection error: ${(err as Error).message}`)
    }
    await res.body.dump().catch(() => {})
    const cls = classifyStatus(res.statusCode)
    if (cls === 'rate_limited') throw new RateLimitedError(parseRetryAfter(res.headers['retry-after']))
    if (cls === 'transient') throw new TransientError(`callback answered ${res.statusCode}`)
    if (cls === 'permanent') throw new PermanentError(`callback answered ${res.statusCode}`)
    await recordCallback(this.deps.pool, record.id, 'sent', attempt + 1, null)
    return []
  }

  async onRetry(
    _campaign: string,
    retries: readonly { id: string; error: string }[],
    attempts: number,
    retryInMs: number,
  ): Promise<void> {
    // Not swept while its message waits in the delay tier: due a lease after it is back.
    await recordCallbackRetries(this.deps.pool, retries, attempts, retryInMs + this.deps.leaseMs)
  }

  async close(): Promise<void> {
    await this.#agent.close().catch(() => {})
  }
}
