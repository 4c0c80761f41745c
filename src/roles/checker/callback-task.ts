import { createHmac } from 'node:crypto'
import { Agent, request } from 'undici'
import type { SabtConfig } from '../../config/campaigns.js'
import { recordCallback } from '../../db/checks.js'
import type { Pool } from '../../db/pool.js'
import { findRecord } from '../../db/registrations.js'
import type { MqClient } from '../../mq/connection.js'
import { CALLBACK } from '../../mq/topology.js'
import type { Metrics } from '../../observability/metrics.js'
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
 * as checks (then dead-lettered and replayable like them).
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

  constructor(
    readonly deps: { mq: MqClient; pool: Pool; config: SabtConfig; metrics: Metrics; secret: string },
  ) {
    this.queue = deps.mq.names.callbackQueue
  }

  async perform(id: string, campaignSlug: string, attempt: number): Promise<FollowUp[]> {
    const campaign = this.deps.config.campaigns.get(campaignSlug)
    if (!campaign?.callbackUrl) return [] // the campaign no longer has a callback: nothing to send
    const record = await findRecord(this.deps.pool, id)
    if (!record || (record.status !== 'accepted' && record.status !== 'rejected')) return []
    const body = JSON.stringify({
      id: record.id,
      campaign: record.campaign,
      status: record.status,
      verdict_at: record.verdict_at?.toISOString() ?? null,
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

  async onRetry(id: string, _campaign: string, attempts: number, error: string): Promise<void> {
    await recordCallback(this.deps.pool, id, 'pending', attempts, error)
  }

  async onDead(id: string, _campaign: string, attempts: number, error: string): Promise<void> {
    await recordCallback(this.deps.pool, id, 'error', attempts, error)
  }

  async close(): Promise<void> {
    await this.#agent.close().catch(() => {})
  }
}
