import { createHmac, createSecretKey, hash, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto'
import { createChallenge } from 'altcha-lib/v1'
import type { Challenge } from 'altcha-lib/v1/types'
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
 * verified with one SHA-256 and one HMAC (node:crypto: checkSolution; a request's with the rest of
 * its turn of the event loop, see check). Single use: a solution's signature is remembered until its
 * challenge expires, in this process's memory (a SpentSet, bounded by `maxRemembered`; the
 * nearest to expiry go first). Replicas behind one address share SABT_POW_SECRET;
 * each remembers its own solutions (decision 021 says what that leaves open).
 */
export class ProofOfWork {
  readonly #key: string
  /** The same key for node:crypto, made once (an HMAC keyed by a string converts it every call). */
  readonly #hmacKey: KeyObject
  readonly #spent: SpentSet
  /** Solutions waiting for this turn of the event loop to end (see check). */
  #waiting: Waiting[] = []
  #turns = 0

  constructor(
    secret: string | undefined,
    readonly maxRemembered = 1_000_000,
  ) {
    this.#key = secret || randomBytes(32).toString('base64url')
    this.#hmacKey = createSecretKey(Buffer.from(this.#key, 'utf8'))
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
   * One solution checked and spent, in this thread (what check does, one at a time): its rule, or
   * null when it is valid and was not spent before.
   */
  verify(campaign: string, payload: string | undefined, now = Date.now()): PowRule | null {
    return this.#spend(checkSolution(this.#hmacKey, campaign, payload, now), now)
  }

  /**
   * verify, for a request: the solutions that arrive in one turn of the event loop are checked
   * and spent together when it ends (setImmediate), back to back, in the order they came. One
   * check takes 4–7 µs in a loop but 17–28 µs between other work that evicts the caches (the
   * HMAC's and the SHA-256's code and state in OpenSSL, the parse); in a row, all but the first
   * find them warm (7 µs each, four in a row; 13 a turn on average under bench `gates`' closed
   * loop). The request waits for its publish's confirm anyway.
   */
  check(campaign: string, payload: string | undefined): Promise<PowRule | null> {
    return new Promise((done) => {
      if (this.#waiting.push({ campaign, payload, done }) === 1) setImmediate(this.#checkWaiting)
    })
  }

  /** Turns of the event loop whose solutions check has verified together. */
  get turns(): number {
    return this.#turns
  }

  readonly #checkWaiting = (): void => {
    const waiting = this.#waiting
    this.#waiting = []
    this.#turns++
    const now = Date.now()
    for (const w of waiting) w.done(this.verify(w.campaign, w.payload, now))
  }

  /** Single use: a checked solution's signature is remembered until its challenge expires. */
  #spend(checked: Checked, now: number): PowRule | null {
    if ('rule' in checked) return checked.rule
    // The signature is the challenge's HMAC by our key (checked): uniform, a fingerprint as it is.
    return this.#spent.spend(checked.signature, checked.expiresS, now / 1000) ? null : 'replayed'
  }

  get remembered(): number {
    return this.#spent.size
  }
}

/** A solution as checkSolution found it, before the single-use check: refused by a rule, or valid. */
export type Checked = { rule: PowRule } | { signature: string; expiresS: number }

interface Waiting {
  campaign: string
  payload: string | undefined
  done: (rule: PowRule | null) => void
}

/**
 * The payload of the solution (base64 JSON, as the ALTCHA widget sends it), checked; the caller
 * spends a valid one (ProofOfWork keeps the single-use set). The check is altcha-lib's
 * `verifySolution` (SHA-256 of salt + number must be the challenge, the challenge's HMAC by this
 * key its signature, the salt's expiry not passed) done with
 * node:crypto: the library's WebCrypto path imports the HMAC key on every call and hops to the
 * thread pool twice, 200 µs of the gateway's CPU per request against 66 for all the rest of it
 * (bench `gates`; test/proof-of-work.test.ts holds the two to the same answers).
 */
export function checkSolution(
  hmacKey: KeyObject,
  campaign: string,
  payload: string | undefined,
  now: number,
): Checked {
  if (!payload) return { rule: 'missing' }
  let p: { algorithm?: unknown; challenge?: unknown; number?: unknown; salt?: unknown; signature?: unknown }
  try {
    p = JSON.parse(Buffer.from(payload, 'base64').toString('utf8'))
  } catch {
    return { rule: 'malformed' }
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
    return { rule: 'malformed' }
  // Only what challenge() issues: SHA-256 (a client naming another algorithm solved nothing of ours).
  if (p.algorithm !== 'SHA-256') return { rule: 'invalid' }
  const challenge = hash('sha256', `${p.salt}${p.number}`, 'hex')
  // The challenge is public (it was sent to the client); the signature is compared in constant time.
  // One spelling of a solution (what altcha-lib writes): the spent set's fingerprint reads these digits.
  if (challenge !== p.challenge || !HEX_DIGEST.test(p.signature)) return { rule: 'invalid' }
  const signature = createHmac('sha256', hmacKey).update(challenge).digest()
  if (!timingSafeEqual(signature, Buffer.from(p.signature, 'hex'))) return { rule: 'invalid' }
  // The salt is ours from here on (the challenge is its hash, and we signed the challenge).
  const params = new URLSearchParams(p.salt.split('?')[1] ?? '')
  const expires = Number(params.get('expires')) * 1000
  if (!Number.isFinite(expires) || expires <= now) return { rule: 'expired_or_forged' }
  if (params.get('campaign') !== campaign) return { rule: 'other_campaign' }
  return { signature: p.signature, expiresS: expires / 1000 }
}

/** A SHA-256 digest as altcha-lib writes a signature: 64 lowercase hex digits. */
const HEX_DIGEST = /^[0-9a-f]{64}$/
