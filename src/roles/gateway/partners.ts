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
    /** A key's burst: at least one full batch, or it could never send one. */
    readonly maxBatch: number,
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
      const burst = Math.max(row.records_per_second, this.maxBatch)
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

  /** Spends `records` from the partner's budget, or answers 429 with when to come back. */
  admit(partner: Partner, records: number): void {
    let wait = 0
    for (let i = 0; i < records; i++) wait = partner.bucket.reserve()
    if (wait > 0) {
      for (let i = 0; i < records; i++) partner.bucket.cancel()
      throw new ApiError(
        'SABT_RATE_LIMITED',
        [
          {
            field: 'authorization',
            rule: 'rate_limit',
            message: `at most ${partner.row.records_per_second} records per second for this key`,
          },
        ],
        Math.ceil(wait / 1000),
      )
    }
  }
}
