import { describe, expect, it } from 'vitest'
import { classifyStatus, parseRetryAfter } from './outcomes.js'

// The classification table (outcomes.ts, docs/checks.md): what each provider answer makes the checker do.
describe('classifyStatus', () => {
  it.each([
    [200, 'success'],
    [204, 'success'],
    [299, 'success'],
    [429, 'rate_limited'],
    [408, 'transient'],
    [500, 'transient'],
    [502, 'transient'],
    [503, 'transient'],
    [599, 'transient'],
    [400, 'permanent'],
    [401, 'permanent'],
    [403, 'permanent'],
    [404, 'permanent'],
    [409, 'permanent'],
    [422, 'permanent'],
    [301, 'permanent'],
  ])('%i → %s', (status, cls) => {
    expect(classifyStatus(status)).toBe(cls)
  })
})

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 11, 1, 12, 0, 0)
  it('reads seconds and HTTP dates, capped at 10 minutes', () => {
    expect(parseRetryAfter('3', now)).toBe(3000)
    expect(parseRetryAfter('0', now)).toBe(0)
    expect(parseRetryAfter(['7', '9'], now)).toBe(7000)
    expect(parseRetryAfter('86400', now)).toBe(600_000)
    expect(parseRetryAfter(new Date(now + 4500).toUTCString(), now)).toBe(4000) // HTTP dates have whole seconds
    expect(parseRetryAfter(new Date(now - 60_000).toUTCString(), now)).toBe(0)
  })
  it('falls back to one second when missing or unreadable', () => {
    expect(parseRetryAfter(undefined, now)).toBe(1000)
    expect(parseRetryAfter('', now)).toBe(1000)
    expect(parseRetryAfter('soon', now)).toBe(1000)
    expect(parseRetryAfter('-5', now)).toBe(1000)
  })
})
