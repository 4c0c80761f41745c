/**
 * How a provider's answer is classified — the one table, also in docs/checks.md:
 *
 * | provider answer                         | class        | what the checker does                                            |
 * |-----------------------------------------|--------------|------------------------------------------------------------------|
 * | 2xx with a readable answer              | definite     | store `passed` / `failed`; recompute the verdict                 |
 * | 2xx the provider definition cannot read | permanent    | dead letter at once (the provider broke its contract)            |
 * | 408, 5xx, timeout, connection error     | transient    | next delay tier, one attempt spent; counts toward the breaker    |
 * | 429 (with or without Retry-After)       | rate-limited | delay tier, no attempt spent; the bucket pauses for Retry-After  |
 * | any other 4xx                           | permanent    | dead letter at once (our request is wrong: fix, then replay)     |
 * | circuit open (not called at all)        | parked       | delay tier, no attempt spent                                     |
 */
export type CallClass = 'definite' | 'transient' | 'rate_limited' | 'permanent'

export function classifyStatus(status: number): Exclude<CallClass, 'definite'> | 'success' {
  if (status >= 200 && status < 300) return 'success'
  if (status === 429) return 'rate_limited'
  if (status === 408 || status >= 500) return 'transient'
  return 'permanent'
}

/** Errors named by what the caller must do (bullmq's convention), not by where they came from. */
export class TransientError extends Error {
  override name = 'TransientError'
}

export class PermanentError extends Error {
  override name = 'PermanentError'
}

export class RateLimitedError extends Error {
  override name = 'RateLimitedError'
  constructor(readonly retryAfterMs: number) {
    super(`rate limited by the provider (retry after ${retryAfterMs} ms)`)
  }
}

/** Retry-After as seconds or an HTTP date; missing or unreadable → 1 s. Capped at 10 minutes. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number {
  const v = Array.isArray(value) ? value[0] : value
  if (!v) return 1000
  const seconds = Number(v)
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 600_000)
  // An HTTP date has a weekday and a month name; Date.parse would take "-5" for the year -5.
  const date = /[a-z]/i.test(v) ? Date.parse(v) : Number.NaN
  if (Number.isFinite(date)) return Math.min(Math.max(0, date - now), 600_000)
  return 1000
}
