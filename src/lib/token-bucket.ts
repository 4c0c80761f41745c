/**
 * A per-provider rate limit the checker respects before calling: GCRA, the token bucket as a
 * schedule (rate r, burst b): a call may start at max(now, TAT − (b−1)/r); each call moves TAT on by
 * 1/r. Callers reserve a start time and wait for it, so concurrent workers are paced exactly, and in
 * any window of t seconds at most r·t + b calls start.
 *
 * A provider's 429 slows it further: the bucket pauses for Retry-After and the rate drops by a
 * fifth, climbing back a little with every answered call (additive increase, multiplicative decrease).
 */
export class TokenBucket {
  readonly configuredRate: number
  #rate: number
  #tat = 0
  #pausedUntil = 0
  readonly burst: number

  constructor(ratePerSecond: number, burst = Math.max(1, Math.ceil(ratePerSecond / 20))) {
    this.configuredRate = ratePerSecond
    this.#rate = ratePerSecond
    this.burst = burst
  }

  get rate(): number {
    return this.#rate
  }

  /** Reserves the next start time; returns how long to wait (ms) before calling. */
  reserve(now = Date.now()): number {
    const interval = 1000 / this.#rate
    const start = Math.max(now, this.#tat - (this.burst - 1) * interval, this.#pausedUntil)
    this.#tat = Math.max(this.#tat, start) + interval
    return start - now
  }

  /**
   * Takes a token if one is there now (returns 0), else returns how long until one is (and takes
   * nothing). Decided at the actual moment of the call, so the limit holds on real start times.
   */
  take(now = Date.now()): number {
    const interval = 1000 / this.#rate
    const earliest = Math.max(this.#tat - (this.burst - 1) * interval, this.#pausedUntil)
    if (now < earliest) return Math.max(1, Math.ceil(earliest - now))
    this.#tat = Math.max(this.#tat, now) + interval
    return 0
  }

  /** Gives back a reservation that will not be used (the caller parked the message instead). */
  cancel(): void {
    this.#tat -= 1000 / this.#rate
  }

  /** The provider said 429: pause for Retry-After and slow down. */
  slowDown(retryAfterMs: number, now = Date.now()): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, now + retryAfterMs)
    this.#rate = Math.max(this.configuredRate * 0.1, this.#rate * 0.8)
  }

  /** An answered call: recover towards the configured rate. */
  recover(): void {
    if (this.#rate < this.configuredRate)
      this.#rate = Math.min(this.configuredRate, this.#rate + this.configuredRate * 0.01)
  }
}
