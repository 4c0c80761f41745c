import { randomBytes } from 'node:crypto'
import { createChallenge, extractParams, verifySolution } from 'altcha-lib/v1'
import type { Challenge } from 'altcha-lib/v1/types'

/** Why a submission's proof of work was refused (named in the 4xx). */
export type PowRule =
  | 'missing'
  | 'malformed'
  | 'invalid'
  | 'expired_or_forged'
  | 'other_campaign'
  | 'replayed'

/**
 * A proof-of-work gate (decision 021) with ALTCHA's server library: a challenge is stateless —
 * HMAC-signed by this key, its expiry and campaign in its salt's parameters — and a solution is
 * verified with one SHA-256 and one HMAC. Single use: a solution's signature is remembered until
 * its challenge expires, in this process's memory (bounded by `maxRemembered`; the oldest go
 * first, and they are the nearest to expiry). Replicas behind one address share SABT_POW_SECRET;
 * each remembers its own solutions (decision 021 says what that leaves open).
 */
export class ProofOfWork {
  readonly #key: string
  readonly #used = new Map<string, number>()
  #sweptAt = 0

  constructor(
    secret: string | undefined,
    readonly maxRemembered = 1_000_000,
  ) {
    this.#key = secret || randomBytes(32).toString('base64url')
  }

  async challenge(campaign: string, maxNumber: number, expiresS: number): Promise<Challenge> {
    return createChallenge({
      hmacKey: this.#key,
      maxNumber,
      expires: new Date(Date.now() + expiresS * 1000),
      params: { campaign },
    })
  }

  /** The payload of the solution (base64 JSON, as the ALTCHA widget sends it), checked and spent. */
  async verify(campaign: string, payload: string | undefined, now = Date.now()): Promise<PowRule | null> {
    if (!payload) return 'missing'
    let parsed: { signature?: unknown; salt?: unknown }
    try {
      parsed = JSON.parse(Buffer.from(payload, 'base64').toString('utf8'))
    } catch {
      return 'malformed'
    }
    if (typeof parsed?.signature !== 'string' || typeof parsed.salt !== 'string') return 'malformed'
    let ok = false
    try {
      ok = await verifySolution(payload, this.#key, true)
    } catch {
      return 'malformed'
    }
    if (!ok) return 'invalid'
    const params = extractParams(payload)
    if (params.campaign !== campaign) return 'other_campaign'
    const expires = Number(params.expires) * 1000
    if (!Number.isFinite(expires) || expires <= now) return 'expired_or_forged'
    this.#sweep(now)
    if (this.#used.has(parsed.signature)) return 'replayed'
    this.#used.set(parsed.signature, expires)
    if (this.#used.size > this.maxRemembered) this.#used.delete(this.#used.keys().next().value!)
    return null
  }

  get remembered(): number {
    return this.#used.size
  }

  #sweep(now: number): void {
    if (now - this.#sweptAt < 1000) return
    this.#sweptAt = now
    // Remembered in about the order they expire: stop at the first still good.
    for (const [sig, exp] of this.#used) {
      if (exp > now) break
      this.#used.delete(sig)
    }
  }
}
