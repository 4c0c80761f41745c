import { createHmac } from 'node:crypto'
import { Agent, request } from 'undici'
import type { SabtConfig } from '../../config/campaigns.js'
import { configuredFor } from '../../config/campaigns.js'
import { ConfigError } from '../../config/env.js'
import {
  claimCallbackSend,
  loadCallbackSubject,
  loadRejectionReasons,
  recordCallback,
  recordCallbackRetries,
  releaseCallbackSend,
} from '../../db/checks.js'
import { allocationOf } from '../../db/draws.js'
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

/** How long a callback is claimed for its POST (timeout 10 s): a sender that died mid-POST holds it no longer. */
const SEND_CLAIM_MS = 15_000

/** How long a receiver should accept a callback after its `webhook-timestamp` (docs/security.md). */
export const WEBHOOK_TOLERANCE_S = 300

/**
 * The HMAC key of a callback secret, by the Standard Webhooks convention: `whsec_<base64>` is the
 * base64 of the key; any other string is its own UTF-8 bytes (a receiver verifies with the
 * library's `{ format: 'raw' }`).
 */
export function callbackKey(secret: string): Buffer {
  if (!secret.startsWith('whsec_')) return Buffer.from(secret, 'utf8')
  const b64 = secret.slice('whsec_'.length)
  const key = Buffer.from(b64, 'base64')
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || key.length < 16)
    throw new Error('a whsec_ callback secret must be the base64 of at least 16 random bytes')
  return key
}

/**
 * `webhook-signature` of Standard Webhooks (standardwebhooks.com): `v1,<base64 HMAC-SHA256 of
 * "<webhook-id>.<webhook-timestamp>.<body>">`. The timestamp is signed, so a receiver that
 * refuses old ones (and remembers ids within the window) cannot be replayed to.
 */
export function signWebhook(key: Buffer, id: string, timestampS: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampS}.${body}`).digest('base64')}`
}

/**
 * The optional verdict callback: when a record's verdict is final and its campaign declares
 * `callback_url`, the verdict is POSTed there, signed, and retried through the same delay tiers
 * as checks (then dead-lettered and replayable like them). What is owed is the database's
 * `callback_status = 'pending'`, not a message: a message for a callback already sent (or dead)
 * sends nothing, and the sweeper (callback-sweeper.ts) sends again a pending one whose message
 * was lost. The receiver may see a retry, with the same `webhook-id` (and `Idempotency-Key`).
 * Signed with the campaign's own secret (`callback_secret_env`), else SABT_CALLBACK_SECRET.
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
  readonly #globalKey: Buffer
  readonly #keys = new Map<string, Buffer>()

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
    // Every secret is checked at start: a campaign naming a variable this process lacks stops it.
    try {
      this.#globalKey = callbackKey(deps.secret)
    } catch (err) {
      throw new ConfigError(`SABT_CALLBACK_SECRET: ${(err as Error).message}`)
    }
    for (const c of deps.config.campaigns.values()) {
      if (!c.callbackSecretEnv || !c.callbackUrl) continue
      if (!c.callbackSecret)
        throw new ConfigError(
          `campaigns.${c.slug}.callback_secret_env: ${c.callbackSecretEnv} is not set in the checker's environment`,
        )
      try {
        this.#keys.set(c.slug, callbackKey(c.callbackSecret))
      } catch (err) {
        throw new ConfigError(`${c.callbackSecretEnv}: ${(err as Error).message}`)
      }
    }
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
    // A scarce campaign's callback carries the allocation; one sent after a release (the new
    // winner's) is another message to the receiver than the verdict's: its own idempotency key
    // and webhook-id (the receiver's de-duplication key).
    const allocation = await allocationOf(this.deps.pool, campaign, record)
    const idempotencyKey =
      allocation && allocation.state !== 'pending' && allocation.state !== 'not_drawn'
        ? `${record.id}:allocation:${allocation.state}`
        : `${record.id}:verdict`
    const sentAt = new Date()
    // A rejection says why: each failed check with its provider's reason code and words.
    const reasons = record.status === 'rejected' ? await loadRejectionReasons(this.deps.pool, record.id) : []
    const body = JSON.stringify({
      id: record.id,
      campaign: record.campaign,
      status: record.status,
      verdict_at: record.verdict_at?.toISOString() ?? null,
      ...(allocation ? { allocation } : {}),
      reasons,
      sent_at: sentAt.toISOString(),
    })
    const webhookId =
      idempotencyKey === `${record.id}:verdict`
        ? `verdict_${record.id}`
        : `allocation_${record.id}_${allocation!.state}`
    const timestamp = Math.floor(sentAt.getTime() / 1000)
    const key = this.#keys.get(campaign.slug) ?? this.#globalKey
    // One sender at a time: another message for this callback, handled now by this or another
    // checker, finds it claimed and sends nothing. Longer than the POST may take (10 s).
    if (!(await claimCallbackSend(this.deps.pool, record.id, SEND_CLAIM_MS))) return []
    try {
      await this.#post(campaign.callbackUrl, body, {
        'content-type': 'application/json',
        'idempotency-key': idempotencyKey,
        'webhook-id': webhookId,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': signWebhook(key, webhookId, timestamp, body),
      })
    } catch (err) {
      // Not sent: the claim ends now, so the retry (or the sweeper's copy) need not wait for it to lapse.
      await releaseCallbackSend(this.deps.pool, record.id).catch(() => {})
      throw err
    }
    await recordCallback(this.deps.pool, record.id, 'sent', attempt + 1, null)
    return []
  }

  /** One POST to the receiver; throws the retry class its answer calls for. */
  async #post(url: string, body: string, headers: Record<string, string>): Promise<void> {
    let res: Awaited<ReturnType<typeof request>>
    try {
      res = await request(url, {
        method: 'POST',
        dispatcher: this.#agent,
        headers,
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
