import { hash, randomBytes, timingSafeEqual } from 'node:crypto'
import { createChallenge } from 'altcha-lib/v1'
import type { Challenge } from 'altcha-lib/v1/types'
import { HmacSha256 } from '../lib/hmac-sha256.js'
import { SpentSet } from '../lib/spent-set.js'

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
 * verified with one SHA-256 and one HMAC (node:crypto, synchronous: see verify). Single use: a solution's signature is remembered until
 * its challenge expires, in this process's memory (a SpentSet, bounded by `maxRemembered`; the
 * nearest to expiry go first). Replicas behind one address share SABT_POW_SECRET;
 * each remembers its own solutions (decision 021 says what that leaves open).
 */
export class ProofOfWork {
  readonly #key: string
  readonly #hmac: HmacSha256
  readonly #spent: SpentSet

  constructor(
    secret: string | undefined,
    readonly maxRemembered = 1_000_000,
  ) {
    this.#key = secret || randomBytes(32).toString('base64url')
    this.#hmac = new HmacSha256(this.#key)
    this.#spent = new SpentSet(maxRemembered)
  }

  async challenge(campaign: string, maxNumber: number, expiresS: number): Promise<Challenge> {
    return createChallenge({
      hmacKey: this.#key,
      maxNumber,
      expires: new Date(Date.now() + expiresS * 1000),
      params: { campaign },
    })
  }

  /**
   * The payload of the solution (base64 JSON, as the ALTCHA widget sends it), checked and spent.
   * The check is altcha-lib's `verifySolution` (SHA-256 of salt + number must be the challenge,
   * the challenge's HMAC by this key its signature, the salt's expiry not passed) done with
   * node:crypto: the library's WebCrypto path imports the HMAC key on every call and hops to the
   * thread pool twice, 200 µs of the gateway's CPU per request against 66 for all the rest of it
   * (bench `gates`; test/proof-of-work.test.ts holds the two to the same answers). Measured in
   * place, in the gateway under load, each step costs two to three times what it does in a loop
   * (caches shared with everything else): so no object per call that is not needed — the HMAC
   * from one-shot hashes (HmacSha256), the digests compared as bytes, the salt's two parameters
   * read without a URLSearchParams (21 → 15 µs a verification in place, decision 021).
   */
  verify(campaign: string, payload: string | undefined, now = Date.now()): PowRule | null {
    if (!payload) return 'missing'
    let p: { algorithm?: unknown; challenge?: unknown; number?: unknown; salt?: unknown; signature?: unknown }
    try {
      p = JSON.parse(Buffer.from(payload, 'base64').toString('utf8'))
    } catch {
      return 'malformed'
    }
    if (
      typeof p !== 'object' ||
      p === null ||
      typeof p.signature !== 'string' ||
      typeof p.salt !== 'string' ||
      typeof p.challenge !== 'string' ||
      !Number.isSafeInteger(p.number) ||
      (p.number as number) < 0
    )
      return 'malformed'
    // Only what challenge() issues: SHA-256 (a client naming another algorithm solved nothing of ours).
    if (p.algorithm !== 'SHA-256') return 'invalid'
    const challenge = hash('sha256', `${p.salt}${p.number}`, 'hex')
    // The challenge is public (it was sent to the client); the signature is compared in constant time.
    if (challenge !== p.challenge || !sameDigest(this.#hmac.hex(challenge), p.signature)) return 'invalid'
    // The salt is ours from here on (the challenge is its hash, and we signed the challenge).
    const expires = Number(saltParam(p.salt, 'expires')) * 1000
    if (!Number.isFinite(expires) || expires <= now) return 'expired_or_forged'
    if (saltParam(p.salt, 'campaign') !== campaign) return 'other_campaign'
    // The signature is the challenge's HMAC by our key (checked above): uniform, a fingerprint as it is.
    return this.#spent.spend(p.signature, expires / 1000, now / 1000) ? null : 'replayed'
  }

  get remembered(): number {
    return this.#spent.size
  }
}

const HEX_DIGEST = /^[0-9a-f]{64}$/

/** Room for two hex SHA-256 digests, and a view of each half, made once (see sameDigest). */
const DIGESTS = Buffer.alloc(128)
const OURS = DIGESTS.subarray(0, 64)
const THEIRS = DIGESTS.subarray(64)

/**
 * Constant-time equality of the hex digest we computed and the one the client sent, through one
 * reused buffer: two Buffers made per call cost more than the comparison (measured in place).
 */
function sameDigest(ours: string, theirs: string): boolean {
  // Exactly what altcha-lib writes: latin1 below keeps a character's low byte only (U+0130 would
  // pass for '0'), and the spent set's fingerprint reads these digits: one solution, one spelling.
  if (!HEX_DIGEST.test(theirs)) return false
  DIGESTS.write(ours, 0, 'latin1')
  DIGESTS.write(theirs, 64, 'latin1')
  return timingSafeEqual(OURS, THEIRS)
}

/**
 * One parameter of a challenge's salt (`<random>?campaign=…&expires=…&`, as altcha-lib's
 * createChallenge writes it with URLSearchParams), decoded as URLSearchParams would; null if absent.
 */
function saltParam(salt: string, name: string): string | null {
  // indexOf and slice only: URLSearchParams, or a split into pairs, cost a microsecond a request.
  const q = salt.indexOf('?')
  if (q < 0) return null
  for (let at = q + 1; at < salt.length; ) {
    const amp = salt.indexOf('&', at)
    const stop = amp < 0 ? salt.length : amp
    const after = at + name.length
    if (salt.startsWith(name, at) && (after === stop || (after < stop && salt.charCodeAt(after) === 61))) {
      const value = after === stop ? '' : salt.slice(after + 1, stop)
      if (!/[%+]/.test(value)) return value
      try {
        return decodeURIComponent(value.replace(/\+/g, ' '))
      } catch {
        return null
      }
    }
    at = stop + 1
  }
  return null
}
