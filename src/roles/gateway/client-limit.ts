import type { FastifyRequest } from 'fastify'
import { ApiError } from '../../http/errors.js'
import { TokenBucket } from '../../lib/token-bucket.js'

/**
 * The public intake's per-client limit (decision 017): each client address gets `rate` requests
 * per second with a burst of `burst` (GCRA, src/lib/token-bucket.ts). The client address is
 * request.ip — the proxy's X-Forwarded-For only from an address in SABT_TRUST_PROXY, else the
 * socket's. At most `maxTracked` addresses are remembered, least recently seen forgotten first
 * (an address forgotten comes back with a full bucket), so memory stays bounded whatever the
 * number of addresses. Per gateway process: with N gateways a client gets up to N times it.
 */
export class ClientLimit {
  readonly #buckets = new Map<string, TokenBucket>()

  constructor(
    readonly rate: number,
    readonly burst: number,
    readonly maxTracked = 100_000,
  ) {}

  /** Milliseconds until this address may send again, or 0 (and the request is counted). */
  take(address: string, now = Date.now()): number {
    let bucket = this.#buckets.get(address)
    if (bucket) this.#buckets.delete(address)
    else {
      bucket = new TokenBucket(this.rate, this.burst)
      if (this.#buckets.size >= this.maxTracked) {
        const oldest = this.#buckets.keys().next().value
        if (oldest !== undefined) this.#buckets.delete(oldest)
      }
    }
    this.#buckets.set(address, bucket) // most recently seen last
    return bucket.take(now)
  }

  get tracked(): number {
    return this.#buckets.size
  }

  /** An onRequest hook: 429 with Retry-After past the limit, before the body is read. */
  hook() {
    return async (request: FastifyRequest): Promise<void> => {
      const wait = this.take(request.ip)
      if (wait > 0)
        throw new ApiError(
          'SABT_RATE_LIMITED',
          [
            {
              field: '(client)',
              rule: 'rate_limit',
              message: `at most ${this.rate} requests per second (burst ${this.burst}) from one address`,
            },
          ],
          Math.max(1, Math.ceil(wait / 1000)),
        )
    }
  }
}
