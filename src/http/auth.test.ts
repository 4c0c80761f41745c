import { describe, expect, it } from 'vitest'
import { AdminAuth, SESSION_TTL_S } from './auth.js'

describe('admin sessions', () => {
  const auth = new AdminAuth('the-admin-token-0123456789abcdef')

  it('checks the token in constant time, whatever its length', () => {
    expect(auth.checkToken('the-admin-token-0123456789abcdef')).toBe(true)
    expect(auth.checkToken('the-admin-token')).toBe(false)
    expect(auth.checkToken('')).toBe(false)
    expect(auth.checkToken(null)).toBe(false)
    expect(new AdminAuth(null).checkToken('anything')).toBe(false)
  })

  it('issues a session that verifies until it expires, and never contains the token', () => {
    const now = Date.UTC(2026, 0, 1)
    const v = auth.issue(now)
    expect(v).not.toContain('the-admin-token')
    expect(v).toMatch(/^v1\.\d+\.[A-Za-z0-9_-]{43}$/)
    expect(auth.verifySession(v, now)).toBe(true)
    expect(auth.verifySession(v, now + (SESSION_TTL_S - 1) * 1000)).toBe(true)
    expect(auth.verifySession(v, now + SESSION_TTL_S * 1000)).toBe(false)
  })

  it('refuses a session that was altered, or made with another token', () => {
    const now = Date.now()
    const v = auth.issue(now)
    const [, exp, mac] = v.split('.')
    expect(auth.verifySession(`v1.${Number(exp) + 1}.${mac}`, now)).toBe(false)
    expect(auth.verifySession(`v1.${exp}.${mac!.slice(0, -1)}A`, now)).toBe(mac!.endsWith('A'))
    expect(auth.verifySession(`v2.${exp}.${mac}`, now)).toBe(false)
    expect(auth.verifySession(undefined, now)).toBe(false)
    expect(new AdminAuth('another-admin-token-0123456789').verifySession(v, now)).toBe(false)
    expect(new AdminAuth(null).verifySession(v, now)).toBe(false)
  })
})
