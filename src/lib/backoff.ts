/**
 * Exponential backoff with jitter, for work that waits for something to come back (a database, a
 * broker). Each wait is drawn between half and all of the current step ("equal jitter"), so many
 * processes that failed together do not all retry in the same millisecond.
 */
export class Backoff {
  #step: number

  constructor(readonly opts: { initialMs: number; maxMs: number; factor?: number; random?: () => number }) {
    this.#step = opts.initialMs
  }

  /** The next wait in milliseconds; each call doubles the step (up to maxMs). */
  next(): number {
    const step = this.#step
    this.#step = Math.min(this.opts.maxMs, step * (this.opts.factor ?? 2))
    const r = (this.opts.random ?? Math.random)()
    return Math.round(step / 2 + (step / 2) * r)
  }

  reset(): void {
    this.#step = this.opts.initialMs
  }

  /** Waits the next step. */
  wait(): Promise<void> {
    const ms = this.next()
    return new Promise((r) => setTimeout(r, ms))
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
