/**
 * Single-use tokens remembered until they expire, without giving the garbage collector a million
 * objects to walk. A `Map` of hex strings did that: at the gateway's rate the proof-of-work gate's
 * memory grew by ~10,000 strings a second, each full mark of the heap walked all of them, and the
 * gate cost 40 % of ingest against 4 % without the memory (bench `gates`).
 *
 * An open-addressing table (linear probing) in three typed arrays: a token's 64-bit fingerprint
 * (two Uint32 halves) and its expiry in whole seconds. Fingerprints are taken from tokens that are
 * uniform already — HMAC outputs the caller has verified — so two tokens share one with odds of
 * n / 2^64 (1e-13 with a million remembered). Expired slots are skipped and reused; when live and
 * expired slots fill half the table it is rebuilt with the live ones, twice as large while they
 * fill a quarter of it (up to 4 × max slots: 12 bytes each). Past `max` live, the rebuild keeps
 * the three quarters of `max` that expire last (the ones nearest expiry go first).
 */
export class SpentSet {
  #hi: Uint32Array
  #lo: Uint32Array
  #exp: Uint32Array
  #mask: number
  readonly #maxSlots: number
  /** Slots not empty: live and expired. */
  #used = 0
  /** Spent since the last rebuild, plus the live ones it kept (some may have expired since). */
  #live = 0

  constructor(readonly max: number) {
    this.#maxSlots = 2 ** Math.ceil(Math.log2(Math.max(16, max * 4)))
    const slots = Math.min(this.#maxSlots, 2 ** 14)
    this.#hi = new Uint32Array(slots)
    this.#lo = new Uint32Array(slots)
    this.#exp = new Uint32Array(slots)
    this.#mask = slots - 1
  }

  /** How many are remembered (expired ones count until the next rebuild). */
  get size(): number {
    return this.#live
  }

  /**
   * Spends a token: true the first time, false if it is remembered and not expired. `hex` holds at
   * least 16 hex digits of a uniform value (the first 16 are its fingerprint).
   */
  spend(hex: string, expiresS: number, nowS: number): boolean {
    const hi = Number.parseInt(hex.slice(0, 8), 16) >>> 0
    const lo = Number.parseInt(hex.slice(8, 16), 16) >>> 0
    let free = -1
    for (let i = lo & this.#mask; ; i = (i + 1) & this.#mask) {
      const exp = this.#exp[i]!
      if (exp === 0) {
        if (free < 0) {
          free = i
          this.#used++
        }
        break
      }
      if (exp <= nowS) {
        if (free < 0) free = i
      } else if (this.#hi[i] === hi && this.#lo[i] === lo) return false
    }
    this.#hi[free] = hi
    this.#lo[free] = lo
    this.#exp[free] = Math.max(1, Math.ceil(expiresS))
    this.#live++
    if (this.#used * 2 > this.#mask + 1 || this.#live > this.max) this.#rebuild(nowS)
    return true
  }

  #rebuild(nowS: number): void {
    const [hi, lo, exp] = [this.#hi, this.#lo, this.#exp]
    // Kept: every live slot expiring after `cutoff`, and `atCutoff` of those expiring at it.
    let cutoff = nowS
    let atCutoff = 0
    let live = 0
    for (let i = 0; i < exp.length; i++) if (exp[i]! > nowS) live++
    if (live > this.max) {
      // Keep the three quarters of `max` that expire last: live slots per expiry second, latest
      // first; the second where the count crosses is kept in part.
      const keep = Math.floor(this.max * 0.75)
      const counts = new Map<number, number>()
      for (let i = 0; i < exp.length; i++)
        if (exp[i]! > nowS) counts.set(exp[i]!, (counts.get(exp[i]!) ?? 0) + 1)
      live = 0
      for (const second of [...counts.keys()].sort((a, b) => b - a)) {
        const n = counts.get(second)!
        if (live + n > keep) {
          cutoff = second
          atCutoff = keep - live
          live = keep
          break
        }
        live += n
      }
    }
    let slots = exp.length
    while (live * 4 > slots && slots < this.#maxSlots) slots *= 2
    this.#hi = new Uint32Array(slots)
    this.#lo = new Uint32Array(slots)
    this.#exp = new Uint32Array(slots)
    this.#mask = slots - 1
    this.#used = 0
    this.#live = 0
    for (let j = 0; j < exp.length; j++) {
      if (exp[j]! < cutoff || (exp[j] === cutoff && (cutoff === nowS || atCutoff-- <= 0))) continue
      let i = lo[j]! & this.#mask
      while (this.#exp[i] !== 0) i = (i + 1) & this.#mask
      this.#hi[i] = hi[j]!
      this.#lo[i] = lo[j]!
      this.#exp[i] = exp[j]!
      this.#used++
      this.#live++
    }
  }
}
