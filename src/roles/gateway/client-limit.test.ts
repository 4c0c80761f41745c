import { describe, expect, it } from 'vitest'
import { ClientLimit } from './client-limit.js'

describe('per-client limit', () => {
  it('lets an address send its burst, then its rate; each address on its own', () => {
    const l = new ClientLimit(2, 3)
    const t = 1_000_000
    expect([0, 1, 2, 3].map(() => l.take('a', t))).toEqual([0, 0, 0, 500])
    expect(l.take('b', t)).toBe(0)
    expect(l.take('a', t + 500)).toBe(0)
    expect(l.take('a', t + 500)).toBeGreaterThan(0)
  })

  it('remembers at most maxTracked addresses, the least recently seen forgotten first', () => {
    const l = new ClientLimit(1, 1, 3)
    for (const a of ['a', 'b', 'c']) l.take(a, 0)
    l.take('a', 0) // a is seen again: b is now the oldest
    l.take('d', 0)
    expect(l.tracked).toBe(3)
    expect(l.take('a', 1)).toBeGreaterThan(0) // still remembered, still limited
    expect(l.take('b', 1)).toBe(0) // forgotten: a fresh bucket
    for (let i = 0; i < 10_000; i++) l.take(`10.0.${i >> 8}.${i & 255}`, 2)
    expect(l.tracked).toBe(3)
  })
})
