export interface HttpLimits {
  requestTimeoutMs: number
  headersTimeoutMs: number
  /** How often Node looks for requests past their timeouts: the timeouts' granularity. */
  checkEveryMs: number
  maxHeaderBytes: number
  maxConnections: number
}

/**
 * The slow-client settings, derived once. Node checks request and header deadlines on a timer
 * (30 s by default), so a 1 s timeout would really be up to 31 s: the timer runs at a quarter of
 * the shorter deadline, between 25 ms and 1 s.
 */
export function httpLimits(opts: {
  requestTimeoutMs: number
  headersTimeoutMs?: number | undefined
  maxHeaderBytes?: number | undefined
  maxConnections?: number | undefined
}): HttpLimits {
  const headersTimeoutMs = Math.min(opts.headersTimeoutMs ?? 5000, opts.requestTimeoutMs)
  return {
    requestTimeoutMs: opts.requestTimeoutMs,
    headersTimeoutMs,
    checkEveryMs: Math.max(25, Math.min(1000, Math.floor(headersTimeoutMs / 4))),
    maxHeaderBytes: opts.maxHeaderBytes ?? 16_384,
    maxConnections: opts.maxConnections ?? 10_000,
  }
}
