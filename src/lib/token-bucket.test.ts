import { describe, expect, it } from 'vitest'
import { TokenBucket } from './token-bucket.js'

describe('TokenBucket', () => {
  it('take(): never more than rate·t + burst calls in any window, on the times calls really start', () => {
    const b = new TokenBucket(20, 1)
    const starts: number[] = []
    // Callers that come back late (a busy event loop): each retries after its wait plus 0–80 ms.
    let t = 0
    let seed = 7
    const jitter = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % 80
    }
    while (starts.length < 200) {
      const w = b.take(t)
      if (w === 0) starts.push(t)
      else t += w + jitter()
    }
    for (let i = 0; i < starts.length; i++) {
      const inWindow = starts.filter((s) => s >= starts[i]! && s < starts[i]! + 1000).length
      expect(inWindow).toBeLessThanOrEqual(21)
    }
  })

  it('reserve(): paces concurrent callers exactly, with a bounded burst', () => {
    const b = new TokenBucket(10, 2)
    const waits = Array.from({ length: 5 }, () => b.reserve(0))
    expect(waits).toEqual([0, 0, 100, 200, 300])
  })

  it('slows down after a 429 and recovers with answered calls', () => {
    const b = new TokenBucket(100)
    b.slowDown(1000, 0)
    expect(b.rate).toBe(80)
    expect(b.take(500)).toBeGreaterThan(0) // paused for Retry-After
    expect(b.take(1000)).toBe(0)
    for (let i = 0; i < 50; i++) b.recover()
    expect(b.rate).toBe(100)
  })
})
