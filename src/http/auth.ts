import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { parseCookie, stringifySetCookie } from 'cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ApiError } from './errors.js'

/**
 * Admin authentication: the admin token (SABT_ADMIN_TOKEN), either as a bearer header (scripts,
 * curl) or, for a browser, as a session cookie the dashboard's login form hands out in exchange
 * for the token (docs/decisions/009-admin-sessions-and-csrf.md).
 *
 * The cookie holds no token: `v1.<expiry>.<HMAC-SHA256(key, "v1.<expiry>")>`, where the key is
 * derived from the admin token — so changing the token ends every session. HttpOnly (no script
 * reads it), SameSite=Strict (no other site's page sends it), Secure over HTTPS.
 *
 * CSRF: a change (POST/PUT/PATCH/DELETE) authenticated by the cookie must also carry
 * `HX-Request: true` (htmx sends it; a cross-site form cannot, and a cross-site fetch with it needs
 * a CORS preflight that is never granted) and an Origin (or, failing that, Referer) of this very
 * host. Requests with the bearer header need neither: a browser never adds that header by itself.
 */
export const SESSION_COOKIE = 'sabt_admin'
export const SESSION_TTL_S = 12 * 3600

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** The bearer token of a request (`Authorization: Bearer …`), or null. */
export function bearerToken(request: FastifyRequest): string | null {
  const h = request.headers.authorization
  if (typeof h !== 'string') return null
  const m = /^Bearer\s+(.+)$/i.exec(h.trim())
  return m ? m[1]!.trim() : null
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

export class AdminAuth {
  readonly #expected: Buffer | null
  readonly #key: Buffer | null

  readonly ttlS: number
  /** Secure on every session cookie (SABT_COOKIE_SECURE), not only when the request came over HTTPS. */
  readonly secureCookie: boolean

  constructor(token: string | null, opts: { ttlS?: number; secureCookie?: boolean } = {}) {
    this.ttlS = opts.ttlS ?? SESSION_TTL_S
    this.secureCookie = opts.secureCookie ?? true
    this.#expected = token ? digest(token) : null
    this.#key = token ? createHmac('sha256', token).update('sabt admin session v1').digest() : null
  }

  /** The admin token, compared in constant time (both sides hashed to the same length first). */
  checkToken(given: string | null | undefined): boolean {
    if (!this.#expected || typeof given !== 'string' || given.length === 0) return false
    return timingSafeEqual(digest(given), this.#expected)
  }

  #mac(payload: string): Buffer {
    return createHmac('sha256', this.#key!).update(payload).digest()
  }

  /** A new session value, valid for ttlS. */
  issue(now = Date.now()): string {
    if (!this.#key) throw new Error('no admin token configured')
    const payload = `v1.${Math.floor(now / 1000) + this.ttlS}`
    return `${payload}.${this.#mac(payload).toString('base64url')}`
  }

  verifySession(value: string | undefined, now = Date.now()): boolean {
    if (!this.#key || !value) return false
    const m = /^(v1\.([0-9]{1,12}))\.([A-Za-z0-9_-]{43})$/.exec(value)
    if (!m) return false
    const given = Buffer.from(m[3]!, 'base64url')
    const want = this.#mac(m[1]!)
    if (given.length !== want.length || !timingSafeEqual(given, want)) return false
    return Number(m[2]) * 1000 > now
  }

  /** How the request proves it is the admin: 'bearer', 'cookie', or null. */
  authenticate(request: FastifyRequest): 'bearer' | 'cookie' | null {
    const bearer = bearerToken(request)
    if (bearer !== null) return this.checkToken(bearer) ? 'bearer' : null
    return this.verifySession(sessionCookie(request)) ? 'cookie' : null
  }

  /** Set-Cookie value for a new session (Secure when the request came over HTTPS). */
  sessionCookie(request: FastifyRequest, now = Date.now()): string {
    return stringifySetCookie({
      name: SESSION_COOKIE,
      value: this.issue(now),
      httpOnly: true,
      sameSite: 'strict',
      secure: this.secureCookie || request.protocol === 'https',
      path: '/',
      maxAge: this.ttlS,
    })
  }

  clearCookie(request: FastifyRequest): string {
    return stringifySetCookie({
      name: SESSION_COOKIE,
      value: '',
      httpOnly: true,
      sameSite: 'strict',
      secure: this.secureCookie || request.protocol === 'https',
      path: '/',
      maxAge: 0,
    })
  }

  /**
   * A hook (use it as onRequest, before the body is even parsed) that lets a request through only as the admin: bearer token, or session cookie
   * (plus the CSRF rules above for changes). With no token configured, it refuses everyone.
   */
  guard() {
    return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
      const how = this.authenticate(request)
      if (!how)
        throw new ApiError('SABT_UNAUTHORIZED', [
          { field: 'authorization', rule: 'admin_token', message: 'requires the admin token' },
        ])
      if (how === 'cookie' && UNSAFE.has(request.method)) {
        const problem = csrfProblem(request)
        if (problem)
          throw new ApiError('SABT_FORBIDDEN', [
            { field: problem, rule: 'same_origin', message: 'must come from this site' },
          ])
      }
    }
  }
}

export function sessionCookie(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie
  if (typeof header !== 'string') return undefined
  return parseCookie(header)[SESSION_COOKIE]
}

/** Why a cookie-authenticated change looks cross-site (the header at fault), or null when it does not. */
export function csrfProblem(request: FastifyRequest, requireHtmx = true): string | null {
  if (requireHtmx && request.headers['hx-request'] !== 'true') return 'hx-request'
  const origin = request.headers.origin ?? request.headers.referer
  if (typeof origin !== 'string' || origin === 'null') return 'origin'
  try {
    const from = new URL(origin)
    // Compare hosts the way the browser wrote them (a default port is left out of Origin).
    if (from.host !== new URL(`${from.protocol}//${request.host}`).host) return 'origin'
  } catch {
    return 'origin'
  }
  return null
}

/**
 * A hook (use it as onRequest, before the body is even parsed) that lets a request through only with the admin token (bearer) or an admin session
 * cookie. With no token configured, admin routes refuse everyone.
 */
export function requireAdmin(token: string | null) {
  return new AdminAuth(token).guard()
}
