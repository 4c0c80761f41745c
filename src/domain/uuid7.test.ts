import { describe, expect, it } from 'vitest'
import { isUuidV7, newUuidV7, uuidV7Time } from './uuid7.js'

describe('newUuidV7', () => {
  it('mints valid UUIDv7s carrying the current time', () => {
    const before = Date.now()
    const id = newUuidV7()
    expect(isUuidV7(id)).toBe(true)
    expect(uuidV7Time(id)).toBeGreaterThanOrEqual(before)
    expect(uuidV7Time(id)).toBeLessThanOrEqual(Date.now())
  })

  it('is strictly increasing, also within one millisecond and across pool refills', () => {
    let prev = newUuidV7()
    for (let i = 0; i < 5000; i++) {
      const id = newUuidV7()
      expect(id > prev).toBe(true)
      prev = id
    }
    const t = Date.now()
    const a = newUuidV7(t)
    const b = newUuidV7(t)
    expect(b > a).toBe(true)
  })

  it('does not repeat', () => {
    const ids = new Set(Array.from({ length: 20_000 }, () => newUuidV7()))
    expect(ids.size).toBe(20_000)
  })
})
