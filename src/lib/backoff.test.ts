import { describe, expect, it } from 'vitest'
import { Backoff } from './backoff.js'

describe('Backoff', () => {
  it('doubles its step up to the cap, each wait between half and all of the step', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 })
    expect([1, 2, 3, 4, 5, 6].map(() => low.next())).toEqual([50, 100, 200, 400, 500, 500])
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 1 })
    expect([1, 2, 3, 4, 5].map(() => high.next())).toEqual([100, 200, 400, 800, 1000])
  })

  it('spreads the waits of processes that failed together', () => {
    const waits = new Set(
      Array.from({ length: 50 }, () => new Backoff({ initialMs: 1000, maxMs: 5000 }).next()),
    )
    expect(waits.size).toBeGreaterThan(10)
    for (const w of waits) expect(w >= 500 && w <= 1000).toBe(true)
  })

  it('starts over after reset', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 1000, random: () => 1 })
    b.next()
    b.next()
    b.reset()
    expect(b.next()).toBe(10)
  })
})
