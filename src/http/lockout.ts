/**
 * Sign-in lockout: after `maxFailures` wrong tokens from one client address within `windowS`
 * (counted from the first of them), every sign-in from that address is refused until the window
 * ends — a right token included, so guessing cannot go on at any pace. Per process (each status
 * replica counts its own); at most `maxTracked` addresses are remembered, the oldest forgotten
 * first, so a flood of addresses cannot grow memory without bound.
 */
export class SignInLockout {
  readonly #failures = new Map<string, { count: number; since: number }>()

  constructor(
    readonly maxFailures = 10,
    readonly windowS = 900,
    readonly maxTracked = 10_000,
  ) {}

  /** Seconds until this address may sign in again, or 0 when it may now. */
  lockedFor(address: string, now = Date.now()): number {
    const f = this.#failures.get(address)
    if (!f) return 0
    const ends = f.since + this.windowS * 1000
    if (now >= ends) {
      this.#failures.delete(address)
      return 0
    }
    return f.count >= this.maxFailures ? Math.ceil((ends - now) / 1000) : 0
  }

  failed(address: string, now = Date.now()): void {
    const f = this.#failures.get(address)
    if (f && now < f.since + this.windowS * 1000) {
      f.count++
      return
    }
    this.#failures.delete(address)
    if (this.#failures.size >= this.maxTracked) {
      const oldest = this.#failures.keys().next().value
      if (oldest !== undefined) this.#failures.delete(oldest)
    }
    this.#failures.set(address, { count: 1, since: now })
  }

  succeeded(address: string): void {
    this.#failures.delete(address)
  }

  get tracked(): number {
    return this.#failures.size
  }
}
