import { createHash, timingSafeEqual } from 'node:crypto'
import { parseCookie, stringifySetCookie } from 'cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import {
  anyActiveOperator,
  BOOTSTRAP_OPERATOR,
  createSession,
  endSession,
  type OperatorIdentity,
  operatorByToken,
  sessionOperator,
} from '../db/operators.js'
import type { Pool } from '../db/pool.js'
import { ApiError } from './errors.js'
import { SignInLockout } from './lockout.js'

/**
 * Operator authentication (docs/decisions/017-operator-accounts-and-limits.md): each operator has
 * a personal token (`sabt operators add NAME`), sent as a bearer header (scripts, curl) or, for a
 * browser, traded at the dashboard's login form for a session cookie. The bootstrap token
 * (SABT_ADMIN_TOKEN) signs in as the pseudo-operator "bootstrap" only while no operator account
 * exists: it is there to set up the first one, not to be shared.
 *
 * Sessions are server-side (operator_sessions): the cookie holds 256 random bits, the table their
 * hash, so logout and `sabt operators revoke` end a session at once. HttpOnly, SameSite=Strict,
 * Secure (SABT_COOKIE_SECURE, on by default). Ten wrong tokens from one address within the window
 * lock that address out of signing in (429 with Retry-After), a right token included.
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

export type SignIn = { ok: true; operator: OperatorIdentity } | { ok: false; lockedForS: number }

export interface AdminAuthOptions {
  ttlS?: number
  /** Secure on every session cookie (SABT_COOKIE_SECURE), not only when the request came over HTTPS. */
  secureCookie?: boolean
  lockout?: SignInLockout
}

export class AdminAuth {
  readonly #bootstrap: Buffer | null
  readonly ttlS: number
  readonly secureCookie: boolean
  readonly lockout: SignInLockout
  readonly #who = new WeakMap<FastifyRequest, OperatorIdentity>()

  constructor(
    readonly pool: Pool,
    bootstrapToken: string | null,
    opts: AdminAuthOptions = {},
  ) {
    this.#bootstrap = bootstrapToken ? digest(bootstrapToken) : null
    this.ttlS = opts.ttlS ?? SESSION_TTL_S
    this.secureCookie = opts.secureCookie ?? true
    this.lockout = opts.lockout ?? new SignInLockout()
  }

  /** The bootstrap token, compared in constant time (both sides hashed to the same length first). */
  #isBootstrap(given: string): boolean {
    return this.#bootstrap !== null && timingSafeEqual(digest(given), this.#bootstrap)
  }

  /** Who a token belongs to: an operator, the bootstrap token while no operator exists, or nobody. */
  async identify(token: string | null | undefined): Promise<OperatorIdentity | null> {
    if (typeof token !== 'string' || token.length === 0 || token.length > 200) return null
    if (this.#isBootstrap(token))
      return (await anyActiveOperator(this.pool)) ? null : { id: null, name: BOOTSTRAP_OPERATOR }
    return operatorByToken(this.pool, token)
  }

  /** A sign-in attempt from `address`, counted by the lockout. */
  async signIn(address: string, token: string | null | undefined): Promise<SignIn> {
    const locked = this.lockout.lockedFor(address)
    if (locked > 0) return { ok: false, lockedForS: locked }
    const operator = await this.identify(token)
    if (!operator) {
      this.lockout.failed(address)
      return { ok: false, lockedForS: 0 }
    }
    this.lockout.succeeded(address)
    return { ok: true, operator }
  }

  /** Who the request acts as (bearer token, else session cookie), or an ApiError (401, or 429 locked out). */
  async authenticate(
    request: FastifyRequest,
  ): Promise<{ how: 'bearer' | 'cookie'; operator: OperatorIdentity } | null> {
    const bearer = bearerToken(request)
    if (bearer !== null) {
      const r = await this.signIn(request.ip, bearer)
      if (r.ok) return { how: 'bearer', operator: r.operator }
      if (r.lockedForS > 0)
        throw new ApiError(
          'SABT_RATE_LIMITED',
          [{ field: 'authorization', rule: 'lockout', message: 'too many wrong tokens from this address' }],
          r.lockedForS,
        )
      return null
    }
    const value = sessionCookie(request)
    if (!value || !/^[A-Za-z0-9_-]{43}$/.test(value)) return null
    const operator = await sessionOperator(this.pool, value, this.#bootstrap)
    return operator ? { how: 'cookie', operator } : null
  }

  /** The operator a guarded request acts as (set by guard()). */
  operatorOf(request: FastifyRequest): OperatorIdentity {
    const who = this.#who.get(request)
    if (!who) throw new Error('operatorOf: the request did not pass the admin guard')
    return who
  }

  /** Set-Cookie value for a new session of this operator. */
  async startSession(request: FastifyRequest, operator: OperatorIdentity): Promise<string> {
    return stringifySetCookie({
      name: SESSION_COOKIE,
      value: await createSession(this.pool, operator, this.ttlS, this.#bootstrap),
      httpOnly: true,
      sameSite: 'strict',
      secure: this.secureCookie || request.protocol === 'https',
      path: '/',
      maxAge: this.ttlS,
    })
  }

  /** Ends the request's session (if it has one) and returns the Set-Cookie that clears it. */
  async endSession(request: FastifyRequest): Promise<string> {
    const value = sessionCookie(request)
    if (value) await endSession(this.pool, value)
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
   * A hook (use it as onRequest, before the body is even parsed) that lets a request through only
   * as an operator: bearer token, or session cookie (plus the CSRF rules above for changes).
   */
  guard() {
    return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
      // Accounts and sessions live in PostgreSQL: without it nobody can be told apart, and the
      // error answers say 503 (src/http/error-answers.ts), as on every route.
      const auth = await this.authenticate(request)
      if (!auth)
        throw new ApiError('SABT_UNAUTHORIZED', [
          { field: 'authorization', rule: 'admin_token', message: 'requires an operator token or session' },
        ])
      if (auth.how === 'cookie' && UNSAFE.has(request.method)) {
        const problem = csrfProblem(request)
        if (problem)
          throw new ApiError('SABT_FORBIDDEN', [
            { field: problem, rule: 'same_origin', message: 'must come from this site' },
          ])
      }
      this.#who.set(request, auth.operator)
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
 * A hook that lets a request through only with this token as bearer (the simulator's knobs: a
 * test stand-in with no operator accounts). With no token, it refuses everyone.
 */
export function requireAdmin(token: string | null) {
  const expected = token ? digest(token) : null
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const given = bearerToken(request)
    if (!expected || !given || !timingSafeEqual(digest(given), expected))
      throw new ApiError('SABT_UNAUTHORIZED', [
        { field: 'authorization', rule: 'admin_token', message: 'requires the admin token' },
      ])
  }
}
