/**
 * Open-loop load driver: sends registrations at a fixed offered rate, whatever the server does,
 * and measures each request's latency from its INTENDED send time (t0 + i/rate). A server that
 * stalls therefore shows the stall in every request scheduled during it, instead of the client
 * quietly sending less (coordinated omission, which wrk and autocannon do not correct).
 *
 * Runs as its own process (its CPU is measured apart from the servers):
 *   node --import tsx bench/lib/open-loop.ts '<json options>'   → one JSON line on stdout
 * Options: url, rate (req/s), durationS, connections, campaign, base, idsFile? (202'd ids, one per
 * line, for the loss check), maxOutstanding, altcha? (proof-of-work solutions, one per request).
 * Requests go over bench/lib/http1-pool.ts (SABT_BENCH_DRIVER=undici: over undici's Pool, as first
 * built; decision 011 and its addendum).
 */
import { createWriteStream, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import * as hdr from 'hdr-histogram-js'
import { Http1Pool } from './http1-pool.js'
import { registrationBody } from './registration-body.js'

export interface OpenLoopOptions {
  url: string
  rate: number
  durationS: number
  connections: number
  campaign: string
  base: number
  idsFile?: string
  maxOutstanding?: number
  /** Sent at the same rate first, not counted: connections, JIT and the server's pools warm up. */
  warmupS?: number
  /** A file of proof-of-work solutions, one per line (bench/lib/proof-of-work.ts): one per request as X-Altcha. */
  altcha?: string
}

export interface OpenLoopResult {
  tool: 'open-loop'
  offered_rps: number
  duration_s: number
  sent: number
  accepted: number
  accepted_rps: number
  statuses: Record<string, number>
  errors: number
  /** Requests never sent because maxOutstanding were already waiting (the server fell far behind). */
  dropped: number
  /** Latency from the intended send time (what a user sees when the server falls behind). */
  p50_ms: number
  p90_ms: number
  p99_ms: number
  p999_ms: number
  max_ms: number
  /** Latency from the actual send (what a closed-loop tool would report). */
  service_p99_ms: number
  /** How late the scheduler itself was at worst (the driver's own health). */
  max_schedule_lag_ms: number
}

function pct(h: hdr.Histogram, p: number): number {
  return Math.round(h.getValueAtPercentile(p) / 10) / 100 // µs → ms, 2 decimals
}

export async function openLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const u = new URL(o.url)
  const fromIntended = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000 })
  const fromSend = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000 })
  const ids = o.idsFile ? createWriteStream(o.idsFile) : null
  const statuses: Record<string, number> = {}
  const maxOutstanding = o.maxOutstanding ?? 100_000
  let sent = 0
  let accepted = 0
  let errors = 0
  let dropped = 0
  let outstanding = 0
  let maxLag = 0
  const warm = Math.round(o.rate * (o.warmupS ?? 0))
  const total = warm + Math.round(o.rate * o.durationS)
  const interval = 1000 / o.rate
  const solutions = o.altcha ? readFileSync(o.altcha, 'utf8').split('\n').filter(Boolean) : null

  const done = (i: number, intended: number, sentAt: number, status: number, body: Buffer | null) => {
    outstanding--
    const now = performance.now()
    // Every 202'd id goes to the loss check, warm-up included; only counted ones go to the stats.
    if (status === 202 && ids && body) ids.write(`${(JSON.parse(body.toString()) as { id: string }).id}\n`)
    if (i < warm) return
    fromIntended.recordValue(Math.max(1, Math.round((now - intended) * 1000)))
    fromSend.recordValue(Math.max(1, Math.round((now - sentAt) * 1000)))
    statuses[status] = (statuses[status] ?? 0) + 1
    if (status === 202) accepted++
  }
  const failed = (i: number) => {
    outstanding--
    if (i >= warm) errors++
  }

  // SABT_BENCH_DRIVER=undici: the driver of decision 011 as first built, for a same-run comparison.
  let send: (i: number, intended: number) => void
  let close: () => Promise<void>
  if (process.env.SABT_BENCH_DRIVER === 'undici') {
    const { Pool } = await import('undici')
    const pool = new Pool(u.origin, { connections: o.connections, pipelining: 1, keepAliveTimeout: 60_000 })
    const headers = { 'content-type': 'application/json' }
    const headersOf = (i: number) =>
      solutions ? { ...headers, 'x-altcha': solutions[i % solutions.length]! } : headers
    send = (i, intended) => {
      const sentAt = performance.now()
      let status = 0
      const chunks: Buffer[] = []
      pool.dispatch(
        {
          origin: u.origin,
          path: u.pathname,
          method: 'POST',
          headers: headersOf(i),
          body: registrationBody(o.campaign, o.base + i),
        },
        {
          onConnect() {},
          onHeaders(statusCode) {
            status = statusCode
            return true
          },
          onData(chunk) {
            if (ids && status === 202) chunks.push(chunk)
            return true
          },
          onComplete() {
            done(i, intended, sentAt, status, chunks.length ? Buffer.concat(chunks) : null)
          },
          onError() {
            failed(i)
          },
        },
      )
    }
    close = () => pool.close().catch(() => {})
  } else {
    const pool = new Http1Pool(u.origin, o.connections, ids !== null)
    const plain = 'content-type: application/json\r\n'
    send = (i, intended) => {
      const sentAt = performance.now()
      const headers = solutions ? `${plain}x-altcha: ${solutions[i % solutions.length]!}\r\n` : plain
      pool.request(Http1Pool.post(u.pathname, u.host, headers, registrationBody(o.campaign, o.base + i)), {
        onComplete: (status, body) => done(i, intended, sentAt, status, body),
        onError: () => failed(i),
      })
    }
    close = async () => pool.close()
  }

  const fire = (i: number, intended: number) => {
    if (outstanding >= maxOutstanding) {
      if (i >= warm) dropped++
      return
    }
    outstanding++
    if (i >= warm) sent++
    send(i, intended)
  }

  const t0 = performance.now() + 50
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1)
      if (next < due && next >= warm) maxLag = Math.max(maxLag, now - (t0 + next * interval))
      while (next < due) {
        fire(next, t0 + next * interval)
        next++
      }
      if (next >= total) return resolve()
      // Sleep until the next intended send (timers are ≥ 1 ms; the loop catches up in bursts).
      setTimeout(tick, Math.max(0, t0 + next * interval - performance.now() - 0.5))
    }
    setTimeout(tick, 50)
  })
  const sendEnd = performance.now()
  const measuredFrom = t0 + warm * interval
  const until = Date.now() + 30_000
  while (outstanding > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
  await close()
  if (ids) await new Promise<void>((r) => ids.end(r))
  const dur = (sendEnd - measuredFrom) / 1000
  return {
    tool: 'open-loop',
    offered_rps: o.rate,
    duration_s: Math.round(dur * 100) / 100,
    sent,
    accepted,
    accepted_rps: Math.round(accepted / dur),
    statuses,
    errors: errors + outstanding,
    dropped,
    p50_ms: pct(fromIntended, 50),
    p90_ms: pct(fromIntended, 90),
    p99_ms: pct(fromIntended, 99),
    p999_ms: pct(fromIntended, 99.9),
    max_ms: Math.round(fromIntended.maxValue / 10) / 100,
    service_p99_ms: pct(fromSend, 99),
    max_schedule_lag_ms: Math.round(maxLag * 100) / 100,
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as OpenLoopOptions
  openLoop(opts).then(
    (r) => {
      process.stdout.write(`${JSON.stringify(r)}\n`)
      process.exit(0)
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack}\n`)
      process.exit(1)
    },
  )
}
