import type { SabtConfig } from '../../config/campaigns.js'
import {
  countByStatus,
  countRejectionReasons,
  type ReasonCount,
  type StatusCounts,
} from '../../db/dashboard.js'
import type { Pool } from '../../db/pool.js'
import type { MqClient } from '../../mq/connection.js'
import { StatsReceiver } from '../../mq/stats.js'
import type { QueueKind } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import { type Metrics, nameOf, SMS_PROVIDER } from '../../observability/metrics.js'
import { parseSnapshot, type StatsSnapshot } from '../../observability/snapshots.js'

/**
 * What the dashboard shows live, computed in the status role from what every process publishes
 * (src/observability/snapshots.ts) and from RabbitMQ's queue depths. No number here is invented:
 * rates are deltas of counters between two snapshots of the same process, latencies are
 * quantiles of histogram-bucket deltas, drain times are extrapolated from sampled depths (and
 * labelled as estimates in the page).
 */

/** Rates on the charts: over the last few seconds of snapshots. */
export const CHART_WINDOW_MS = 3000
/** Provider table: over a longer window, so a p99 rests on more than a handful of calls. */
export const TABLE_WINDOW_MS = 10_000
/** A process whose last snapshot is older than this is stale: left out of rates, flagged. */
export const STALE_MS = 5000
/** …and forgotten after this long. */
export const FORGET_MS = 60_000
/** Queue drain estimates: a linear fit of the depths sampled over this window. */
export const DEPTH_WINDOW_MS = 10_000

const INTAKE_ROUTES = new Set(['/v1/registrations', '/v1/registrations/batch'])
/** Attempt results that are calls to the provider (the others never left the checker). */
const CALL_RESULTS = new Set([
  'passed',
  'failed',
  'transient',
  'permanent',
  'rate_limited',
  'timeout',
  'connection_error',
])
const ERROR_RESULTS = new Set(['transient', 'permanent', 'timeout', 'connection_error'])

type Labels = Record<string, string | number>

interface Ring {
  snaps: StatsSnapshot[]
  receivedAt: number
}

/** The latest snapshots of every process, by instance. */
export class SnapshotStore {
  readonly #by = new Map<string, Ring>()

  constructor(readonly keepMs = TABLE_WINDOW_MS + 5000) {}

  add(s: StatsSnapshot, now = Date.now()): void {
    if (s.stopping) {
      this.#by.delete(s.instance)
      return
    }
    let ring = this.#by.get(s.instance)
    if (!ring) {
      // Every counter of a process is 0 when it starts: that is a snapshot too, so the work it did
      // before its first snapshot reached us still counts in the rates (while within the window).
      const zero: StatsSnapshot = { ...s, at: s.started_at, seq: -1, metrics: [] }
      ring = { snaps: s.at > s.started_at ? [zero] : [], receivedAt: now }
      this.#by.set(s.instance, ring)
    }
    const last = ring.snaps.at(-1)
    if (last && (s.seq <= last.seq || s.at <= last.at)) return // duplicate or out of order
    ring.snaps.push(s)
    ring.receivedAt = now
    while (ring.snaps.length > 2 && ring.snaps[0]!.at < s.at - this.keepMs) ring.snaps.shift()
  }

  prune(now = Date.now()): void {
    for (const [k, r] of this.#by) if (now - r.receivedAt > FORGET_MS) this.#by.delete(k)
  }

  /** Processes heard from within STALE_MS. */
  fresh(now = Date.now()): Ring[] {
    return [...this.#by.values()].filter((r) => now - r.receivedAt <= STALE_MS)
  }

  all(): Ring[] {
    return [...this.#by.values()]
  }
}

function metricValues(s: StatsSnapshot, name: string): StatsSnapshot['metrics'][number]['values'] {
  return s.metrics.find((m) => m.name === name)?.values ?? []
}

/** Sum of a metric's values whose labels pass `where` (histograms: pass `metricName`). */
export function sumWhere(
  s: StatsSnapshot,
  name: string,
  where: (l: Labels) => boolean = () => true,
  metricName?: string,
): number {
  let total = 0
  for (const v of metricValues(s, name))
    if ((metricName === undefined || v.metricName === metricName) && where(v.labels)) total += v.value
  return total
}

/** The earliest and latest snapshots of a process within the window, or null with fewer than two. */
export function windowPair(
  snaps: readonly StatsSnapshot[],
  windowMs: number,
): [StatsSnapshot, StatsSnapshot] | null {
  const last = snaps.at(-1)
  if (!last) return null
  for (const s of snaps) {
    if (s === last) return null
    if (last.at - s.at <= windowMs + 500) return [s, last]
  }
  return null
}

/**
 * A rate summed over processes: each process's counter delta over its own interval (its own
 * clock), so processes started, stopped or restarted in between do not make the sum jump.
 * Null when no process has two snapshots in the window yet.
 */
export function rate(
  rings: readonly Ring[],
  windowMs: number,
  read: (s: StatsSnapshot) => number,
): number | null {
  let sum = 0
  let any = false
  for (const r of rings) {
    const pair = windowPair(r.snaps, windowMs)
    if (!pair) continue
    const [a, b] = pair
    any = true
    sum += Math.max(0, read(b) - read(a)) / ((b.at - a.at) / 1000)
  }
  return any ? sum : null
}

/** Counter deltas over the window, summed over processes (for ratios and histogram buckets). */
export function delta(
  rings: readonly Ring[],
  windowMs: number,
  read: (s: StatsSnapshot) => number,
): number | null {
  let sum = 0
  let any = false
  for (const r of rings) {
    const pair = windowPair(r.snaps, windowMs)
    if (!pair) continue
    any = true
    sum += Math.max(0, read(pair[1]) - read(pair[0]))
  }
  return any ? sum : null
}

/**
 * Prometheus's histogram_quantile: linear interpolation inside the bucket holding the rank.
 * `buckets` are cumulative counts by upper bound, ascending, ending with +Infinity.
 */
export function histogramQuantile(q: number, buckets: readonly [number, number][]): number | null {
  const total = buckets.at(-1)?.[1] ?? 0
  if (total <= 0) return null
  const rank = q * total
  let prevLe = 0
  let prevCount = 0
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Number.POSITIVE_INFINITY) return prevLe
      if (count === prevCount) return le
      return prevLe + (le - prevLe) * ((rank - prevCount) / (count - prevCount))
    }
    prevLe = le
    prevCount = count
  }
  return prevLe
}

/** Least-squares slope (per second) of (t ms, value) points; null with too few points. */
export function slopePerSecond(points: readonly { t: number; v: number }[]): number | null {
  if (points.length < 3) return null
  const span = points.at(-1)!.t - points[0]!.t
  if (span < 2000) return null
  const n = points.length
  const mt = points.reduce((a, p) => a + p.t, 0) / n
  const mv = points.reduce((a, p) => a + p.v, 0) / n
  let num = 0
  let den = 0
  for (const p of points) {
    num += (p.t - mt) * (p.v - mv)
    den += (p.t - mt) ** 2
  }
  return den === 0 ? null : (num / den) * 1000
}

const num = (v: string | number | undefined): number =>
  v === '+Inf' ? Number.POSITIVE_INFINITY : typeof v === 'number' ? v : Number(v)

export interface ProviderRow {
  check: string
  /** Fresh checker processes serving this check. */
  checkers: number
  calls_per_s: number | null
  finished_per_s: number | null
  p50_ms: number | null
  p99_ms: number | null
  /** Share of calls that failed (5xx, 408, timeouts, connection errors, other 4xx) in the window. */
  error_rate: number | null
  rate_limited_per_s: number | null
  retried_per_s: number | null
  parked_per_s: number | null
  circuit: 'closed' | 'half-open' | 'open' | null
  /** Processes in that circuit state, of `checkers`. */
  circuit_processes: number
  rate_limit_per_s: number | null
  /** calls/s ÷ the provider's configured rate limit. */
  quota_used: number | null
}

/** Group commit at the intake, over TABLE_WINDOW_MS: how many registrations each confirm answers. */
export interface IntakeRow {
  /** Gateway processes heard from. */
  gateways: number
  /** Intake messages the broker confirmed per second. */
  messages_per_s: number | null
  /** Registrations answered 202 per confirmed message (the group commit's gain). */
  registrations_per_confirm: number | null
  /** Registrations per published message, interpolated from the histogram's buckets. */
  batch_p50: number | null
  batch_p99: number | null
}

/**
 * Records a checker held instead of deciding, because its configuration does not know their
 * campaign or the check (sabt_checks_held_total): an error for an operator, not a state to wait out.
 */
export interface HeldRow {
  check: string
  campaign: string
  reason: string
  /** Records held in the last TABLE_WINDOW_MS (a held record comes back every ~10 s). */
  records: number
  /** Processes that held some. */
  processes: number
}

export interface QueueRow {
  name: string
  queue: string
  kind: QueueKind
  messages: number | null
  consumers: number | null
  /** Net change of the depth, messages/s, over the last DEPTH_WINDOW_MS. */
  change_per_s: number | null
  /** Seconds until empty at that net rate; null when not draining or unknown. */
  drain_s: number | null
}

export interface ProcessRow {
  instance: string
  pid: number
  host: string
  roles: string[]
  started_at: number
  last_seen_ms: number
  stale: boolean
}

export interface Series {
  window_ms: number
  t: number[]
  /** Requests to POST /v1/registrations and /batch, by answer: 202/207, 4xx, 5xx (503 = shed). */
  accepted_req: (number | null)[]
  rejected_req: (number | null)[]
  shed_req: (number | null)[]
  /** Registrations answered 202 (a batch request carries many). */
  accepted_reg: (number | null)[]
  /** Rows written by recorders: new registrations and duplicates. */
  recorded: (number | null)[]
  /** Checks finished (passed, failed, dead-lettered), by check. */
  checks: Record<string, (number | null)[]>
  /** Queue depths as sampled, by queue display name. */
  depth: Record<string, (number | null)[]>
}

interface Point {
  t: number
  accepted_req: number | null
  rejected_req: number | null
  shed_req: number | null
  accepted_reg: number | null
  recorded: number | null
  checks: Record<string, number | null>
  depth: Record<string, number | null>
}

export interface LiveDeps {
  mq: MqClient
  pool: Pool
  config: SabtConfig
  metrics: Metrics
  log: Logger
}

/**
 * The status role's live view: consumes every process's snapshots (its own exclusive queue on
 * the stats exchange), samples queue depths once a second (also exported as sabt_queue_depth),
 * and keeps a few minutes of history for the charts.
 */
export class LiveStats {
  readonly store = new SnapshotStore()
  readonly #points: Point[] = []
  readonly #depths = new Map<string, { t: number; v: number }[]>()
  #latestDepths = new Map<string, { messages: number; consumers: number } | null>()
  #timer: NodeJS.Timeout | null = null
  #ticking = false
  readonly #receiver: StatsReceiver
  #counts: { at: number; value: Promise<StatusCounts> } | null = null
  #reasons: { at: number; value: Promise<ReasonCount[]> } | null = null
  readonly watched: { queue: string; kind: QueueKind; name: string }[]
  readonly #n: ReturnType<typeof names>

  constructor(
    readonly deps: LiveDeps,
    readonly opts: { tickMs?: number; historyPoints?: number } = {},
  ) {
    this.watched = deps.mq.names.watchedQueues([...deps.config.checks.keys()], deps.config.sms !== null)
    this.#n = names(deps.metrics)
    this.#receiver = new StatsReceiver(
      deps.mq,
      (content) => this.#receive(content),
      (err) => deps.log.warn({ event: 'stats.subscribe_failed', err: err.message }),
    )
  }

  async start(): Promise<void> {
    await this.#receiver.start()
    this.#timer = setInterval(() => {
      void this.tick()
    }, this.opts.tickMs ?? 1000)
    this.#timer.unref()
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    await this.#receiver.close()
  }

  #receive(content: Buffer): void {
    const snap = parseSnapshot(content)
    if (!snap) {
      this.deps.metrics.statsSnapshots.inc({ direction: 'unreadable' })
      return
    }
    this.deps.metrics.statsSnapshots.inc({ direction: 'received' })
    this.store.add(snap)
  }

  /** Samples queue depths and appends one chart point (every second, and on demand in tests). */
  async tick(now = Date.now()): Promise<void> {
    if (this.#ticking) return
    this.#ticking = true
    try {
      let timer: NodeJS.Timeout | undefined
      const depths = await Promise.race([
        this.deps.mq.queueDepths(this.watched.map((w) => w.queue)),
        // A broker that does not answer: depths unknown this second (and the next tick tries again).
        new Promise<Map<string, null>>((resolve) => {
          timer = setTimeout(() => resolve(new Map()), 2000)
        }),
      ])
      clearTimeout(timer)
      this.#latestDepths = depths
      for (const w of this.watched) {
        const d = depths.get(w.queue) ?? null
        if (d) {
          this.deps.metrics.queueDepth.set({ queue: w.queue }, d.messages)
          this.deps.metrics.queueConsumers.set({ queue: w.queue }, d.consumers)
        }
        const hist = this.#depths.get(w.queue) ?? []
        if (d) hist.push({ t: now, v: d.messages })
        while (hist.length > 0 && hist[0]!.t < now - DEPTH_WINDOW_MS) hist.shift()
        this.#depths.set(w.queue, hist)
      }
      this.store.prune(now)
      this.#points.push(this.#point(now, depths))
      const keep = this.opts.historyPoints ?? 300
      if (this.#points.length > keep) this.#points.splice(0, this.#points.length - keep)
    } catch (err) {
      this.deps.log.debug({ event: 'stats.tick_failed', err: (err as Error).message })
    } finally {
      this.#ticking = false
    }
  }

  #point(now: number, depths: Map<string, { messages: number } | null>): Point {
    const rings = this.store.fresh(now)
    const n = this.#n
    const http = (pick: (status: number) => boolean) =>
      rate(rings, CHART_WINDOW_MS, (s) =>
        sumWhere(
          s,
          n.http,
          (l) => l.method === 'POST' && INTAKE_ROUTES.has(String(l.route)) && pick(Number(l.status)),
        ),
      )
    const checks: Record<string, number | null> = {}
    for (const c of this.deps.config.checks.keys())
      checks[c] = rate(rings, CHART_WINDOW_MS, (s) => sumWhere(s, n.checks, (l) => l.check === c))
    const depth: Record<string, number | null> = {}
    for (const w of this.watched) depth[w.name] = depths.get(w.queue)?.messages ?? null
    return {
      t: now,
      accepted_req: http((st) => st === 202 || st === 207),
      rejected_req: http((st) => st >= 400 && st < 500),
      shed_req: http((st) => st >= 500),
      accepted_reg: rate(rings, CHART_WINDOW_MS, (s) => sumWhere(s, n.accepted)),
      recorded: rate(rings, CHART_WINDOW_MS, (s) =>
        sumWhere(
          s,
          n.rows,
          (l) => l.kind === 'registration' || l.kind === 'duplicate' || l.kind === 'waiting',
        ),
      ),
      checks,
      depth,
    }
  }

  /** Chart points after `since` (ms), column by column (uPlot's shape). */
  series(since = 0): Series {
    const pts = this.#points.filter((p) => p.t > since)
    const checks: Record<string, (number | null)[]> = {}
    for (const c of this.deps.config.checks.keys()) checks[c] = pts.map((p) => p.checks[c] ?? null)
    const depth: Record<string, (number | null)[]> = {}
    for (const w of this.watched) depth[w.name] = pts.map((p) => p.depth[w.name] ?? null)
    return {
      window_ms: CHART_WINDOW_MS,
      t: pts.map((p) => p.t),
      accepted_req: pts.map((p) => p.accepted_req),
      rejected_req: pts.map((p) => p.rejected_req),
      shed_req: pts.map((p) => p.shed_req),
      accepted_reg: pts.map((p) => p.accepted_reg),
      recorded: pts.map((p) => p.recorded),
      checks,
      depth,
    }
  }

  providers(now = Date.now()): ProviderRow[] {
    const n = this.#n
    const W = TABLE_WINDOW_MS
    const rows = [...this.deps.config.checks.values()].map((cfg): ProviderRow => {
      const c = cfg.name
      const rings = this.store
        .fresh(now)
        .filter((r) => metricValues(r.snaps.at(-1)!, n.rateLimit).some((v) => v.labels.check === c))
      const attempts = (pick: (result: string) => boolean) => (s: StatsSnapshot) =>
        sumWhere(s, n.attempts, (l) => l.check === c && pick(String(l.result)))
      const calls = delta(
        rings,
        W,
        attempts((r) => CALL_RESULTS.has(r)),
      )
      const errors = delta(
        rings,
        W,
        attempts((r) => ERROR_RESULTS.has(r)),
      )
      const { p50, p99 } = this.#latency(rings, c)
      const { circuit, circuit_processes, limit } = this.#circuitAndLimit(rings, c)
      const callRate = rate(
        rings,
        W,
        attempts((r) => CALL_RESULTS.has(r)),
      )
      return {
        check: c,
        checkers: rings.length,
        calls_per_s: callRate,
        finished_per_s: rate(rings, W, (s) => sumWhere(s, n.checks, (l) => l.check === c)),
        p50_ms: p50,
        p99_ms: p99,
        error_rate: calls && errors !== null ? errors / calls : null,
        rate_limited_per_s: rate(
          rings,
          W,
          attempts((r) => r === 'rate_limited'),
        ),
        retried_per_s: rate(rings, W, (s) =>
          sumWhere(s, n.retries, (l) => l.check === c && l.reason === 'retry'),
        ),
        parked_per_s: rate(rings, W, (s) =>
          sumWhere(s, n.retries, (l) => l.check === c && l.reason !== 'retry'),
        ),
        circuit,
        circuit_processes,
        rate_limit_per_s: limit,
        quota_used: limit && callRate !== null ? callRate / limit : null,
      }
    })
    return this.deps.config.sms ? [...rows, this.#smsRow(now)] : rows
  }

  /** A provider's p50 and p99 in ms over the table's window: bucket deltas summed over processes. */
  #latency(rings: Ring[], check: string): { p50: number | null; p99: number | null } {
    const n = this.#n
    const les = new Set<number>()
    for (const r of rings)
      for (const v of metricValues(r.snaps.at(-1)!, n.latency))
        if (v.metricName === `${n.latency}_bucket` && v.labels.check === check) les.add(num(v.labels.le))
    const buckets: [number, number][] = [...les]
      .sort((a, b) => a - b)
      .map((le) => [
        le,
        delta(rings, TABLE_WINDOW_MS, (s) =>
          sumWhere(s, n.latency, (l) => l.check === check && num(l.le) === le, `${n.latency}_bucket`),
        ) ?? 0,
      ])
    const ms = (q: number | null) => (q === null ? null : q * 1000)
    return { p50: ms(histogramQuantile(0.5, buckets)), p99: ms(histogramQuantile(0.99, buckets)) }
  }

  /**
   * The SMS provider's row (issue 14: messages to citizens on the checks' machinery): texts the
   * provider took per second, its errors and 429s, the circuit and the share of its rate limit.
   * Its answered calls are timed in the checks' latency histogram (labelled with SMS_PROVIDER);
   * retries go through the same delay tiers.
   */
  #smsRow(now: number): ProviderRow {
    const n = this.#n
    const W = TABLE_WINDOW_MS
    const rings = this.store
      .fresh(now)
      .filter((r) => metricValues(r.snaps.at(-1)!, n.rateLimit).some((v) => v.labels.check === SMS_PROVIDER))
    const results = (pick: (result: string) => boolean) => (s: StatsSnapshot) =>
      sumWhere(s, n.citizen, (l) => pick(String(l.result)))
    const isCall = (r: string) => r === 'sent' || r === 'rate_limited' || ERROR_RESULTS.has(r)
    const calls = delta(rings, W, results(isCall))
    const errors = delta(
      rings,
      W,
      results((r) => ERROR_RESULTS.has(r)),
    )
    const callRate = rate(rings, W, results(isCall))
    const { circuit, circuit_processes, limit } = this.#circuitAndLimit(rings, SMS_PROVIDER)
    const { p50, p99 } = this.#latency(rings, SMS_PROVIDER)
    return {
      check: 'sms',
      checkers: rings.length,
      calls_per_s: callRate,
      finished_per_s: rate(
        rings,
        W,
        results((r) => r === 'sent'),
      ),
      p50_ms: p50,
      p99_ms: p99,
      error_rate: calls && errors !== null ? errors / calls : null,
      rate_limited_per_s: rate(
        rings,
        W,
        results((r) => r === 'rate_limited'),
      ),
      retried_per_s: null,
      parked_per_s: rate(
        rings,
        W,
        results((r) => r === 'circuit_open'),
      ),
      circuit,
      circuit_processes,
      rate_limit_per_s: limit,
      quota_used: limit && callRate !== null ? callRate / limit : null,
    }
  }

  /** Circuit: the worst state any process reports for `label`, in how many; the configured limit. */
  #circuitAndLimit(rings: Ring[], label: string) {
    const n = this.#n
    const states = rings.map(
      (r) => metricValues(r.snaps.at(-1)!, n.circuit).find((v) => v.labels.check === label)?.value ?? 0,
    )
    const worst = states.length ? Math.max(...states) : null
    const limits = rings.flatMap((r) =>
      metricValues(r.snaps.at(-1)!, n.rateLimit)
        .filter((v) => v.labels.check === label)
        .map((v) => v.value),
    )
    return {
      circuit:
        worst === null
          ? null
          : worst >= 2
            ? ('open' as const)
            : worst >= 1
              ? ('half-open' as const)
              : ('closed' as const),
      circuit_processes: worst === null ? 0 : states.filter((s) => s === worst).length,
      limit: limits.length ? Math.max(...limits) : null,
    }
  }

  intake(now = Date.now()): IntakeRow {
    const n = this.#n
    const W = TABLE_WINDOW_MS
    const rings = this.store.fresh(now).filter((r) => r.snaps.at(-1)!.roles.includes('gateway'))
    const les = new Set<number>()
    for (const r of rings)
      for (const v of metricValues(r.snaps.at(-1)!, n.batch))
        if (v.metricName === `${n.batch}_bucket`) les.add(num(v.labels.le))
    const buckets: [number, number][] = [...les]
      .sort((a, b) => a - b)
      .map((le) => [
        le,
        delta(rings, W, (s) => sumWhere(s, n.batch, (l) => num(l.le) === le, `${n.batch}_bucket`)) ?? 0,
      ])
    const confirmed = delta(rings, W, (s) => sumWhere(s, n.messages))
    const accepted = delta(rings, W, (s) => sumWhere(s, n.accepted))
    return {
      gateways: rings.length,
      messages_per_s: rate(rings, W, (s) => sumWhere(s, n.messages)),
      registrations_per_confirm: confirmed && accepted !== null ? accepted / confirmed : null,
      batch_p50: histogramQuantile(0.5, buckets),
      batch_p99: histogramQuantile(0.99, buckets),
    }
  }

  held(now = Date.now()): HeldRow[] {
    const n = this.#n
    const by = new Map<string, HeldRow>()
    for (const r of this.store.fresh(now)) {
      const pair = windowPair(r.snaps, TABLE_WINDOW_MS)
      if (!pair) continue
      const [a, b] = pair
      for (const v of metricValues(b, n.held)) {
        const labels = v.labels
        const same = (l: Labels) =>
          l.check === labels.check && l.campaign === labels.campaign && l.reason === labels.reason
        const d = v.value - sumWhere(a, n.held, same)
        if (d <= 0) continue
        const key = `${labels.check}\u0000${labels.campaign}\u0000${labels.reason}`
        const row = by.get(key) ?? {
          check: String(labels.check),
          campaign: String(labels.campaign),
          reason: String(labels.reason),
          records: 0,
          processes: 0,
        }
        row.records += d
        row.processes++
        by.set(key, row)
      }
    }
    return [...by.values()].sort(
      (x, y) => x.campaign.localeCompare(y.campaign) || x.check.localeCompare(y.check),
    )
  }

  queues(): QueueRow[] {
    return this.watched.map((w) => {
      const d = this.#latestDepths.get(w.queue) ?? null
      const slope = slopePerSecond(this.#depths.get(w.queue) ?? [])
      const draining = d && d.messages > 0 && slope !== null && slope < -0.05
      return {
        name: w.name,
        queue: w.queue,
        kind: w.kind,
        messages: d?.messages ?? null,
        consumers: d?.consumers ?? null,
        change_per_s: slope,
        drain_s: draining ? d.messages / -slope! : d?.messages === 0 ? 0 : null,
      }
    })
  }

  processes(now = Date.now()): ProcessRow[] {
    return this.store
      .all()
      .map((r) => {
        const s = r.snaps.at(-1)!
        return {
          instance: s.instance,
          pid: s.pid,
          host: s.host,
          roles: s.roles,
          started_at: s.started_at,
          last_seen_ms: now - r.receivedAt,
          stale: now - r.receivedAt > STALE_MS,
        }
      })
      .sort((a, b) => a.roles.join().localeCompare(b.roles.join()) || a.started_at - b.started_at)
  }

  /**
   * Registrations by campaign and status, from PostgreSQL. One query at most every 2 s, shared by
   * every viewer (a GROUP BY over a big table is not free).
   */
  /** The dashboard's "top rejection reasons", from PostgreSQL, at most every 5 s. */
  rejectionReasons(now = Date.now()): Promise<ReasonCount[]> {
    if (this.#reasons && now - this.#reasons.at < 5000) return this.#reasons.value
    const value = countRejectionReasons(this.deps.pool)
    this.#reasons = { at: now, value }
    value.catch(() => {
      if (this.#reasons?.value === value) this.#reasons = null
    })
    return value
  }

  statusCounts(now = Date.now()): Promise<StatusCounts> {
    if (this.#counts && now - this.#counts.at < 2000) return this.#counts.value
    const value = countByStatus(this.deps.pool)
    this.#counts = { at: now, value }
    value.catch(() => {
      if (this.#counts?.value === value) this.#counts = null
    })
    return value
  }
}

function names(m: Metrics) {
  return {
    http: nameOf(m.httpRequests),
    accepted: nameOf(m.intakeAccepted),
    batch: nameOf(m.intakeBatchSize),
    messages: nameOf(m.intakeMessages),
    rows: nameOf(m.rowsWritten),
    checks: nameOf(m.checks),
    attempts: nameOf(m.checkAttempts),
    latency: nameOf(m.providerLatency),
    retries: nameOf(m.checkRetries),
    circuit: nameOf(m.circuitState),
    rateLimit: nameOf(m.rateLimitPerSecond),
    held: nameOf(m.checksHeld),
    citizen: nameOf(m.citizenMessages),
  }
}
