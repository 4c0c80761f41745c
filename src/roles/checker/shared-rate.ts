import type { Pool } from '../../db/pool.js'
import type { TokenBucket } from '../../lib/token-bucket.js'

/** A slice of the shared schedule this process holds: calls may start at `next`, `next + 1/r`, … before `end`. */
interface Lease {
  next: number
  end: number
  left: number
}

/**
 * A check's rate limit across every checker process: the schedule (GCRA's theoretical arrival
 * time) lives in PostgreSQL, and each process leases the next slice of it — `leaseMs` of the rate,
 * e.g. 25 calls at 100/s — with one UPDATE. Slices never overlap, so N replicas together start at
 * most r·t + (one slice) calls in any window of t seconds, whatever N is. A process leases only while
 * the schedule is less than `horizonMs` ahead of now, so idle replicas do not hoard the rate.
 *
 * The local bucket still paces calls inside a slice and carries a provider's 429 (pause, slower
 * rate); tokens of a slice that a slowed process could not use lapse with it — never handed on.
 * Times come from PostgreSQL's clock as offsets, so the hosts' clocks need not agree.
 */
export class SharedRate {
  readonly key: string
  readonly interval: number
  readonly size: number
  #lease: Lease | null = null
  #renewing: Promise<number> | null = null

  constructor(
    readonly pool: Pool,
    check: string,
    readonly local: TokenBucket,
    readonly leaseMs = 250,
    readonly horizonMs = 500,
  ) {
    this.key = `check:${check}`
    this.interval = 1000 / local.configuredRate
    this.size = Math.max(1, Math.round((local.configuredRate * leaseMs) / 1000))
  }

  /**
   * 0: a call may start now (its token is spent). Otherwise how long (ms) to wait before asking
   * again. Decided at the moment of the call, like TokenBucket.take.
   */
  async take(now = Date.now()): Promise<number> {
    const lease = this.#lease
    // Tokens of the slice whose time has passed long ago lapse (at most the local burst is kept),
    // so a process that was busy cannot fire a whole slice at once.
    const at = lease ? Math.max(lease.next, now - (this.local.burst - 1) * this.interval) : 0
    // (half an interval of slack: the slice's last token must not round into the next slice)
    if (!lease || lease.left <= 0 || at > lease.end - this.interval / 2) {
      const wait = await this.#renew()
      return Math.max(1, wait)
    }
    if (at > now) return Math.max(1, Math.ceil(at - now))
    const localWait = this.local.take(now)
    if (localWait > 0) return localWait
    lease.next = at + this.interval
    lease.left--
    return 0
  }

  /** Leases the next slice (one caller at a time); returns how long until it can be used, in ms. */
  #renew(): Promise<number> {
    this.#renewing ??= this.#takeLease().finally(() => {
      this.#renewing = null
    })
    return this.#renewing
  }

  async #takeLease(): Promise<number> {
    const span = this.size * this.interval
    const leased = await this.pool.query<{ end_in_ms: number }>({
      name: 'sabt.rate_lease',
      text: `INSERT INTO rate_schedules AS s (key, tat)
             VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')
             ON CONFLICT (key) DO UPDATE
               SET tat = greatest(s.tat, clock_timestamp()) + $2 * interval '1 millisecond'
               WHERE s.tat < clock_timestamp() + $3 * interval '1 millisecond'
             RETURNING (extract(epoch FROM s.tat - clock_timestamp()) * 1000)::float8 AS end_in_ms`,
      values: [this.key, span, this.horizonMs],
    })
    const now = Date.now()
    const row = leased.rows[0]
    if (row) {
      const end = now + row.end_in_ms
      this.#lease = { next: end - span, end, left: this.size }
      return Math.ceil(end - span - now)
    }
    // The schedule is far enough ahead already (other replicas hold it): ask again when it is not.
    const ahead = await this.pool.query<{ ahead_ms: number }>({
      name: 'sabt.rate_ahead',
      text: `SELECT (extract(epoch FROM tat - clock_timestamp()) * 1000)::float8 AS ahead_ms
               FROM rate_schedules WHERE key = $1`,
      values: [this.key],
    })
    return Math.ceil(Math.max(1, (ahead.rows[0]?.ahead_ms ?? 0) - this.horizonMs))
  }
}
