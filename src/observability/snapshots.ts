import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { MqClient } from '../mq/connection.js'
import { StatsSender } from '../mq/stats.js'
import type { Logger } from './logger.js'
import type { Metrics } from './metrics.js'

/**
 * A stats snapshot: one process's counters, gauges and histogram buckets at one moment, as its
 * prom-client registry holds them. Every process publishes one a second on the stats exchange;
 * the status role keeps the latest few per process and turns deltas into rates for the dashboard
 * (docs/decisions/008-dashboard-stats-across-processes.md).
 *
 * Values are cumulative (as Prometheus counters are), so a lost snapshot loses nothing: the next
 * one carries the same totals.
 */
const Labels = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]))
const SnapshotMetric = Type.Object({
  name: Type.String({ maxLength: 200 }),
  type: Type.Union([Type.Literal('counter'), Type.Literal('gauge'), Type.Literal('histogram')]),
  values: Type.Array(
    Type.Object({
      labels: Labels,
      value: Type.Number(),
      metricName: Type.Optional(Type.String({ maxLength: 200 })),
    }),
    { maxItems: 20_000 },
  ),
})
export const StatsSnapshot = Type.Object({
  v: Type.Literal(1),
  /** Random per process start: a restarted process is a new instance (its counters start at 0). */
  instance: Type.String({ minLength: 1, maxLength: 64 }),
  pid: Type.Integer(),
  host: Type.String({ maxLength: 255 }),
  roles: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 }),
  started_at: Type.Number(),
  /** The sender's clock (ms): rates use the interval between two snapshots of the same sender. */
  at: Type.Number(),
  seq: Type.Integer({ minimum: 0 }),
  /** The last snapshot of a process that is stopping: the status role forgets it at once. */
  stopping: Type.Optional(Type.Boolean()),
  metrics: Type.Array(SnapshotMetric, { maxItems: 100 }),
})
export type StatsSnapshot = Static<typeof StatsSnapshot>
export type SnapshotMetric = Static<typeof SnapshotMetric>

const check = Compile(StatsSnapshot)
/** Snapshots bigger than this are refused unread (a sane one is a few kilobytes). */
export const MAX_SNAPSHOT_BYTES = 1_000_000

/** A snapshot from the wire: `unknown` until it validates. */
export function parseSnapshot(content: Buffer): StatsSnapshot | null {
  if (content.length > MAX_SNAPSHOT_BYTES) return null
  let doc: unknown
  try {
    doc = JSON.parse(content.toString('utf8'))
  } catch {
    return null
  }
  return check.Check(doc) ? (doc as StatsSnapshot) : null
}

export async function takeSnapshot(
  metrics: Metrics,
  meta: { instance: string; roles: readonly string[]; startedAt: number; seq: number; stopping?: boolean },
): Promise<StatsSnapshot> {
  const read = await Promise.all(metrics.snapshotMetrics.map((m) => m.get()))
  return {
    v: 1,
    instance: meta.instance,
    pid: process.pid,
    host: hostname(),
    roles: [...meta.roles],
    started_at: meta.startedAt,
    at: Date.now(),
    seq: meta.seq,
    ...(meta.stopping ? { stopping: true } : {}),
    metrics: read.map((m) => ({
      name: m.name,
      type: String(m.type) as SnapshotMetric['type'],
      values: m.values.map((v) => ({
        labels: v.labels as Record<string, string | number>,
        value: v.value,
        ...('metricName' in v && v.metricName ? { metricName: v.metricName as string } : {}),
      })),
    })),
  }
}

/**
 * Publishes this process's snapshot once a second: a plain channel (no confirms), transient
 * messages with a short expiry. A snapshot that cannot be sent (broker down, write buffer full) is
 * skipped — the next one carries the same cumulative totals.
 */
export class StatsPublisher {
  readonly instance = randomBytes(8).toString('hex')
  readonly startedAt = Date.now()
  readonly #sender: StatsSender
  #timer: NodeJS.Timeout | null = null
  #seq = 0
  #busy = false

  constructor(
    readonly mq: MqClient,
    readonly metrics: Metrics,
    readonly log: Logger,
    readonly opts: { roles: readonly string[]; intervalMs?: number },
  ) {
    this.#sender = new StatsSender(mq)
  }

  start(): void {
    // A process shows up as soon as it reaches the broker, not a second later.
    this.mq.on('connect', this.#onConnect)
    this.#timer = setInterval(() => {
      void this.publish()
    }, this.opts.intervalMs ?? 1000)
    this.#timer.unref()
    void this.publish()
  }

  readonly #onConnect = (): void => {
    void this.publish()
  }

  /** Publishes one snapshot now; false when it could not be sent (never waits more than 1 s). */
  async publish(stopping = false): Promise<boolean> {
    if (this.#busy && !stopping) return false
    this.#busy = true
    try {
      // A broker that does not answer must not hold the next snapshot, nor a shutdown, hostage.
      const sent = await this.#sender.send(async () =>
        Buffer.from(
          JSON.stringify(
            await takeSnapshot(this.metrics, {
              instance: this.instance,
              roles: this.opts.roles,
              startedAt: this.startedAt,
              seq: this.#seq++,
              stopping,
            }),
          ),
        ),
      )
      this.metrics.statsSnapshots.inc({ direction: sent ? 'sent' : 'skipped' })
      return sent
    } catch (err) {
      this.metrics.statsSnapshots.inc({ direction: 'skipped' })
      this.log.debug({ event: 'stats.publish_failed', err: (err as Error).message })
      return false
    } finally {
      this.#busy = false
    }
  }

  /** Stops publishing; the last snapshot says so, and the status role forgets this process. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    this.mq.off('connect', this.#onConnect)
    await this.publish(true)
    await this.#sender.close()
  }
}
