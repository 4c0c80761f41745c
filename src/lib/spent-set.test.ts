import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { SpentSet } from './spent-set.js'

const token = () => randomBytes(32).toString('hex')

describe('SpentSet', () => {
  it('spends a token once until it expires, then takes it again', () => {
    const s = new SpentSet(100)
    const a = token()
    expect(s.spend(a, 1010, 1000)).toBe(true)
    expect(s.spend(a, 1010, 1005)).toBe(false)
    expect(s.spend(token(), 1010, 1005)).toBe(true)
    expect(s.spend(a, 1020, 1010)).toBe(true) // expired at 1010: a slot to reuse
    expect(s.spend(a, 1020, 1011)).toBe(false)
  })

  it('remembers every one of 300,000 tokens across its rebuilds while they are under max', () => {
    const s = new SpentSet(1_000_000)
    const all = Array.from({ length: 300_000 }, token)
    let first = 0
    for (const t of all) if (s.spend(t, 5000, 1000)) first++
    expect(first).toBe(300_000)
    expect(s.size).toBe(300_000)
    let again = 0
    for (const t of all) if (s.spend(t, 5000, 1001)) again++
    expect(again).toBe(0)
  })

  it('reuses expired slots: a steady flow of short-lived tokens keeps it small', () => {
    const s = new SpentSet(1_000_000)
    let taken = 0
    for (let sec = 0; sec < 100; sec++)
      for (let i = 0; i < 2000; i++) if (s.spend(token(), 2000 + sec + 2, 2000 + sec)) taken++
    expect(taken).toBe(200_000)
    expect(s.size).toBeLessThanOrEqual(3 * 2000 + 16_384)
  })

  it('past max, forgets the ones nearest expiry first and keeps the latest', () => {
    const s = new SpentSet(10_000)
    const bySecond: string[][] = []
    for (let sec = 0; sec < 30; sec++) {
      bySecond.push(Array.from({ length: 1000 }, token))
      for (const t of bySecond[sec]!) s.spend(t, 10_000 + sec, 1000)
    }
    expect(s.size).toBeLessThanOrEqual(10_000)
    // The last 7,000 spent expire last: all still refused.
    for (const t of bySecond.slice(-7).flat()) expect(s.spend(t, 20_000, 1001)).toBe(false)
    // The first ones, nearest expiry, were forgotten.
    expect(bySecond[0]!.filter((t) => s.spend(t, 20_000, 1001)).length).toBe(1000)
  })

  it('past max with one expiry second for all, forgets only a quarter (not the whole second)', () => {
    const s = new SpentSet(10_000)
    const all = Array.from({ length: 10_001 }, token)
    for (const t of all) s.spend(t, 5000, 1000)
    expect(s.size).toBe(7500)
    expect(all.filter((t) => !s.spend(t, 5000, 1001)).length).toBe(7500)
  })
})
