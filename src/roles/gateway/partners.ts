import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { type ApiKeyRow, activeApiKeys, parseApiKey } from '../../db/api-keys.js'
import type { Pool } from '../../db/pool.js'
import { bearerToken } from '../../http/auth.js'
import { ApiError } from '../../http/errors.js'
import { TokenBucket } from '../../lib/token-bucket.js'
import type { Logger } from '../../observability/logger.js'

export interface Partner {
  row: ApiKeyRow
  bucket: TokenBucket
}

/**
 * Partner API keys for batch intake, read from PostgreSQL in the background (every few seconds)
 * so the request path never touches the database; if the database is away, the last known keys
 * keep working. Each key has its own records-per-second limit (per gateway process: with N
 * gateway replicas a partner gets up to N times it — set the key's rate accordingly).
 */
export class PartnerKeys {
  #partners = new Map<string, Partner>()
  #loaded = false
  #timer: NodeJS.Timeout | null = null

  constructor(
    readonly pool: Pool,
    readonly log: Logger,
    readonly refreshMs = 5000,
  ) {}

  get loaded(): boolean {
    return this.#loaded
  }

  async start(): Promise<void> {
    await this.refresh().catch((err) =>
      this.log.warn(
        { event: 'gateway.keys_unavailable', err: (err as Error).message },
        'cannot load partner keys yet',
      ),
    )
    this.#timer = setInterval(() => {
      this.refresh().catch((err) =>
        this.log.warn({ event: 'gateway.keys_refresh_failed', err: (err as Error).message }),
      )
    }, this.refreshMs)
    this.#timer.unref()
  }

  async refresh(): Promise<void> {
    const rows = await activeApiKeys(this.pool)
    const next = new Map<string, Partner>()
    for (const row of rows) {
      const old = this.#partners.get(row.id)
      const keep = old && old.row.records_per_second === row.records_per_second
      // The burst is one second's worth, never more: a 5/s key gets 5 records in a second, however
      // large its batch (the excess is answered 429 record by record).
      const burst = Math.max(1, row.records_per_second)
      next.set(row.id, { row, bucket: keep ? old.bucket : new TokenBucket(row.records_per_second, burst) })
    }
    this.#partners = next
    this.#loaded = true
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
  }

  /** The partner a request's key belongs to, or an ApiError (401, or 503 while keys cannot be read). */
  authenticate(request: FastifyRequest): Partner {
    const given =
      bearerToken(request) ??
      (typeof request.headers['x-api-key'] === 'string' ? request.headers['x-api-key'] : null)
    if (!given)
      throw new ApiError('SABT_UNAUTHORIZED', [
        { field: 'authorization', rule: 'api_key', message: 'requires a partner API key' },
      ])
    if (!this.#loaded)
      throw new ApiError('SABT_NOT_READY', undefined, 5, 'Partner keys are not loaded yet; retry later')
    const parsed = parseApiKey(given)
    const partner = parsed ? this.#partners.get(parsed.id) : undefined
    const ok =
      parsed &&
      partner &&
      timingSafeEqual(createHash('sha256').update(parsed.secret).digest(), partner.row.secret_sha256)
    if (!ok)
      throw new ApiError('SABT_UNAUTHORIZED', [
        { field: 'authorization', rule: 'api_key', message: 'unknown or revoked API key' },
      ])
    return partner
  }

  /**
   * Spends up to `records` from the partner's budget: how many of the batch's records may go in
   * (the first ones; the rest are answered 429 one by one), or 429 for the whole request when the
   * budget has none left.
   */
  admit(partner: Partner, records: number, now = Date.now()): number {
    let admitted = 0
    let wait = 0
    while (admitted < records) {
      wait = partner.bucket.take(now)
      if (wait > 0) break
      admitted++
    }
    if (admitted === 0) throw rateLimited(partner, Math.ceil(wait / 1000))
    return admitted
  }
}

export function rateLimited(partner: Partner, retryAfterS: number): ApiError {
  return new ApiError(
    'SABT_RATE_LIMITED',
    [
      {
        field: 'authorization',
        rule: 'rate_limit',
        message: `at most ${partner.row.records_per_second} records per second for this key`,
      },
    ],
    Math.max(1, retryAfterS),
  )
}
