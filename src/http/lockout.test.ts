import { describe, expect, it } from 'vitest'
import { SignInLockout } from './lockout.js'

describe('sign-in lockout', () => {
  it('locks an address out after maxFailures within the window, until the window ends', () => {
    const l = new SignInLockout(10, 60)
    const t0 = 1_000_000
    for (let i = 0; i < 10; i++) {
      expect(l.lockedFor('198.51.100.1', t0 + i)).toBe(0)
      l.failed('198.51.100.1', t0 + i)
    }
    expect(l.lockedFor('198.51.100.1', t0 + 10)).toBe(60)
    expect(l.lockedFor('198.51.100.1', t0 + 30_000)).toBe(30)
    expect(l.lockedFor('198.51.100.2', t0 + 10)).toBe(0) // another address is not affected
    expect(l.lockedFor('198.51.100.1', t0 + 60_000)).toBe(0) // the window is over
    l.failed('198.51.100.1', t0 + 60_001)
    expect(l.lockedFor('198.51.100.1', t0 + 60_002)).toBe(0) // a new window, one failure
  })

  it('forgets failures after a success, and remembers at most maxTracked addresses', () => {
    const l = new SignInLockout(2, 60, 3)
    l.failed('a', 0)
    l.failed('a', 1)
    expect(l.lockedFor('a', 2)).toBeGreaterThan(0)
    l.succeeded('a')
    expect(l.lockedFor('a', 3)).toBe(0)
    for (const a of ['b', 'c', 'd', 'e']) l.failed(a, 4)
    expect(l.tracked).toBe(3)
  })
})
