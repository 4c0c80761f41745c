import { describe, expect, it } from 'vitest'
import type { StatsSnapshot } from '../../observability/snapshots.js'
import {
  histogramQuantile,
  rate,
  SnapshotStore,
  STALE_MS,
  slopePerSecond,
  sumWhere,
  windowPair,
} from './live.js'

function snap(
  instance: string,
  seq: number,
  at: number,
  accepted: number,
  extra: Partial<StatsSnapshot> = {},
): StatsSnapshot {
  return {
    v: 1,
    instance,
    pid: 1,
    host: 'h',
    roles: ['gateway'],
    started_at: 0,
    at,
    seq,
    metrics: [
      {
        name: 'sabt_intake_accepted_total',
        type: 'counter',
        values: [
          { labels: { campaign: 'a' }, value: accepted },
          { labels: { campaign: 'b' }, value: 1 },
        ],
      },
    ],
    ...extra,
  }
}
const accepted = (s: StatsSnapshot) => sumWhere(s, 'sabt_intake_accepted_total', (l) => l.campaign === 'a')

describe('live rates from snapshots', () => {
  it('sums per-process rates, each over its own interval and clock', () => {
    const store = new SnapshotStore()
    // Process A: 100/s; process B (another host, its clock 7 s ahead): 50/s.
    for (let i = 0; i <= 5; i++) {
      store.add(snap('A', i, 100_000 + i * 1000, i * 100, { started_at: 99_000 }), 100_000 + i * 1000)
      store.add(snap('B', i, 107_000 + i * 1000, 1000 + i * 50, { started_at: 50_000 }), 100_000 + i * 1000)
    }
    expect(rate(store.fresh(105_000), 3000, accepted)).toBeCloseTo(150)
  })

  it('counts what a process did before its first snapshot arrived (it started from zero)', () => {
    const store = new SnapshotStore()
    store.add(snap('A', 0, 10_000, 40, { started_at: 9_000 }), 10_000)
    expect(rate(store.fresh(10_000), 3000, accepted)).toBeCloseTo(40)
    // …but not when it started long ago (outside the window): no rate from one snapshot.
    const old = new SnapshotStore()
    old.add(snap('A', 0, 100_000, 40_000, { started_at: 1_000 }), 100_000)
    expect(rate(old.fresh(100_000), 3000, accepted)).toBeNull()
  })

  it('ignores duplicates and out-of-order snapshots, forgets a process that says it stops, flags a silent one', () => {
    const store = new SnapshotStore()
    store.add(snap('A', 1, 1000, 10), 1000)
    store.add(snap('A', 2, 2000, 20), 2000)
    store.add(snap('A', 1, 1000, 10), 2100) // duplicate
    store.add(snap('A', 0, 500, 0), 2200) // late
    expect(store.all()[0]!.snaps.map((s) => s.seq)).toEqual([-1, 1, 2])
    expect(store.fresh(2000 + STALE_MS + 1)).toEqual([])
    store.add(snap('A', 3, 3000, 30, { stopping: true }), 3000)
    expect(store.all()).toEqual([])
  })

  it('never reports a negative rate, and none without two snapshots in the window', () => {
    expect(windowPair([snap('A', 0, 1000, 5)], 3000)).toBeNull()
    const store = new SnapshotStore()
    store.add(snap('A', 0, 0, 10), 0)
    store.add(snap('A', 1, 1000, 5), 1000)
    expect(rate(store.fresh(1000), 3000, accepted)).toBe(0)
  })

  it('sums label sets selected by a predicate', () => {
    expect(sumWhere(snap('A', 0, 0, 7), 'sabt_intake_accepted_total')).toBe(8)
    expect(sumWhere(snap('A', 0, 0, 7), 'no_such_metric')).toBe(0)
  })
})

describe('histogram quantiles (Prometheus histogram_quantile)', () => {
  const b = (...pairs: [number, number][]) => pairs
  it('interpolates inside the bucket holding the rank', () => {
    const buckets = b([0.01, 50], [0.05, 90], [0.1, 100], [Number.POSITIVE_INFINITY, 100])
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.01)
    expect(histogramQuantile(0.7, buckets)).toBeCloseTo(0.03)
    expect(histogramQuantile(0.99, buckets)).toBeCloseTo(0.095)
  })
  it('answers the highest finite bound when the rank is in +Inf, and null with no observations', () => {
    expect(histogramQuantile(0.99, b([0.1, 1], [Number.POSITIVE_INFINITY, 10]))).toBe(0.1)
    expect(histogramQuantile(0.5, b([0.1, 0], [Number.POSITIVE_INFINITY, 0]))).toBeNull()
    expect(histogramQuantile(0.5, [])).toBeNull()
  })
})

describe('queue drain estimate', () => {
  it('fits the slope of sampled depths', () => {
    const pts = [0, 1, 2, 3, 4].map((i) => ({ t: i * 1000, v: 1000 - i * 100 }))
    expect(slopePerSecond(pts)).toBeCloseTo(-100)
    expect(slopePerSecond(pts.slice(0, 2))).toBeNull() // too few
    expect(slopePerSecond([0, 500, 1000].map((t) => ({ t, v: 5 })))).toBeNull() // too short a span
  })
})
