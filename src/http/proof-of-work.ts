import { hash, randomBytes } from 'node:crypto'
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
  /** The same key as HMAC-SHA256 pads, made once (see HmacSha256). */
  readonly #hmac: HmacSha256
  readonly #spent: SpentSet
  /** Solutions waiting for this turn of the event loop to end (see check). */
  #waiting: Waiting[] = []
  #turns = 0

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
   * One solution checked and spent, in this thread (what check does, one at a time): its rule, or
   * null when it is valid and was not spent before.
   */
  verify(campaign: string, payload: string | undefined, now = Date.now()): PowRule | null {
    return this.#spend(checkSolution(this.#hmac, campaign, payload, now), now)
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
 * HMAC-SHA256 (RFC 2104) of a 64-character message under one key, from node:crypto's one-shot
 * `hash`: the key's inner and outer pads are made once, each call writes the message after the
 * inner pad and the inner digest after the outer pad, in two buffers kept for it. The same one
 * native function as the solution's own SHA-256, three calls in a row: `createHmac` made an HMAC
 * object and crossed into C++ three times, and between the rest of a request's work (the caches
 * cold) it took 12–18 µs where the whole check now takes about half (bench/lib, decision 021's
 * addendum). Synchronous and not reentrant (one thread, one call at a time).
 */
export class HmacSha256 {
  readonly #inner = Buffer.alloc(64 + 64)
  readonly #outer = Buffer.alloc(64 + 32)

  constructor(key: string) {
    let k = Buffer.from(key, 'utf8')
    if (k.length > 64) k = hash('sha256', k, 'buffer')
    for (let i = 0; i < 64; i++) {
      this.#inner[i] = (k[i] ?? 0) ^ 0x36
      this.#outer[i] = (k[i] ?? 0) ^ 0x5c
    }
  }

  /** The HMAC of `message` (exactly 64 one-byte characters, e.g. a SHA-256 in hex), in lowercase hex. */
  hex64(message: string): string {
    if (this.#inner.write(message, 64, 'latin1') !== 64 || message.length !== 64)
      throw new RangeError('HmacSha256.hex64 takes a 64-character message')
    hash('sha256', this.#inner, 'buffer').copy(this.#outer, 64)
    return hash('sha256', this.#outer, 'hex')
  }
}

/** Two strings of the same length compared in time that does not depend on where they differ. */
function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return d === 0
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
  hmac: HmacSha256,
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
  if (!sameString(hmac.hex64(challenge), p.signature)) return { rule: 'invalid' }
  // The salt is ours from here on (the challenge is its hash, and we signed the challenge).
  const params = new URLSearchParams(p.salt.split('?')[1] ?? '')
  const expires = Number(params.get('expires')) * 1000
  if (!Number.isFinite(expires) || expires <= now) return { rule: 'expired_or_forged' }
  if (params.get('campaign') !== campaign) return { rule: 'other_campaign' }
  return { signature: p.signature, expiresS: expires / 1000 }
}

/** A SHA-256 digest as altcha-lib writes a signature: 64 lowercase hex digits. */
const HEX_DIGEST = /^[0-9a-f]{64}$/
