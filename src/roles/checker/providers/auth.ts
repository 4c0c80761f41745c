import { createHash, createHmac, randomUUID } from 'node:crypto'
import { request } from 'undici'
import type { AuthDefinition } from '../../../config/providers.js'
import { TransientError } from '../outcomes.js'

/**
 * How a call proves who is calling: a static header, an HMAC signature over a configurable
 * canonical string, or an OAuth2 client-credentials token — fetched once, shared by every call
 * of the process, refreshed shortly before it expires and once more when a provider answers 401.
 */
export interface SignInput {
  method: string
  path: string
  body: string
  headers: Record<string, string>
}

export const DEFAULT_CANONICAL = '{method}\\n{path}\\n{timestamp}\\n{body_sha256}'

/** The canonical string of a call: placeholders replaced, `\n` read as a newline. */
export function canonicalString(
  template: string,
  v: SignInput & { timestamp: string; nonce: string },
): string {
  return template.replace(/\\n|\{([a-z0-9_]+)(?::([A-Za-z0-9-]+))?\}/g, (m, name?: string, arg?: string) => {
    if (m === '\\n') return '\n'
    switch (name) {
      case 'method':
        return v.method
      case 'path':
        return v.path
      case 'timestamp':
        return v.timestamp
      case 'nonce':
        return v.nonce
      case 'body':
        return v.body
      case 'body_sha256':
        return createHash('sha256').update(v.body).digest('hex')
      case 'header':
        return v.headers[(arg ?? '').toLowerCase()] ?? ''
      default:
        return m
    }
  })
}

export function hmacHeaders(
  auth: Extract<AuthDefinition, { type: 'hmac' }>,
  call: SignInput,
  now = Date.now(),
): Record<string, string> {
  const timestamp = String(Math.floor(now / 1000))
  const nonce = randomUUID()
  const out: Record<string, string> = {}
  out[auth.timestamp_header ?? 'x-timestamp'] = timestamp
  if (auth.nonce_header) out[auth.nonce_header] = nonce
  if (auth.key_id) out[auth.key_id_header ?? 'x-key-id'] = auth.key_id
  const canonical = canonicalString(auth.canonical ?? DEFAULT_CANONICAL, {
    ...call,
    headers: { ...call.headers, ...out },
    timestamp,
    nonce,
  })
  const mac = createHmac(auth.algorithm ?? 'sha256', auth.secret)
    .update(canonical)
    .digest(auth.encoding ?? 'hex')
  out[auth.header ?? 'x-signature'] = `${auth.prefix ?? ''}${mac}`
  return out
}

type OAuth = Extract<AuthDefinition, { type: 'oauth2_client_credentials' }>

/** One client's token: one fetch at a time, whatever the number of calls waiting for it. */
export class TokenCache {
  #token: { value: string; refreshAt: number } | null = null
  #fetching: Promise<string> | null = null
  /** After a failed fetch, calls fail at once for a second instead of each asking the endpoint. */
  #failed: { until: number; error: Error } | null = null
  /** Token fetches made (tests and the metric read it). */
  fetches = 0

  constructor(
    readonly auth: OAuth,
    readonly now: () => number = Date.now,
    readonly onFetch: (host: string) => void = () => {},
  ) {}

  /** A token valid for a while yet: the cached one, or a fresh one (one fetch for all waiting). */
  async get(): Promise<string> {
    const t = this.#token
    if (t && this.now() < t.refreshAt) return t.value
    return this.#refresh()
  }

  /**
   * The provider refused `rejected` (401): a new token, once — calls that were refused with the
   * same token wait for the same fetch; one refused with an older token just takes the current.
   */
  async renew(rejected: string): Promise<string> {
    if (this.#token && this.#token.value !== rejected) return this.#token.value
    if (this.#token?.value === rejected) this.#token = null
    return this.#refresh()
  }

  #refresh(): Promise<string> {
    if (this.#failed && this.now() < this.#failed.until) return Promise.reject(this.#failed.error)
    this.#fetching ??= this.#fetch()
      .then(
        (token) => {
          this.#failed = null
          return token
        },
        (err: Error) => {
          this.#failed = { until: this.now() + 1000, error: err }
          throw err
        },
      )
      .finally(() => {
        this.#fetching = null
      })
    return this.#fetching
  }

  async #fetch(): Promise<string> {
    this.fetches++
    this.onFetch(new URL(this.auth.token_url).host)
    const form = new URLSearchParams({ grant_type: 'client_credentials' })
    if (this.auth.scope) form.set('scope', this.auth.scope)
    if (this.auth.audience) form.set('audience', this.auth.audience)
    const basic = Buffer.from(
      `${encodeURIComponent(this.auth.client_id)}:${encodeURIComponent(this.auth.client_secret)}`,
    ).toString('base64')
    let res: Awaited<ReturnType<typeof request>>
    try {
      res = await request(this.auth.token_url, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          authorization: `Basic ${basic}`,
        },
        body: form.toString(),
        signal: AbortSignal.timeout(10_000),
      })
    } catch (err) {
      throw new TransientError(
        `token endpoint unreachable: ${(err as Error & { code?: string }).code ?? 'error'}`,
      )
    }
    const body = (await res.body.json().catch(() => null)) as {
      access_token?: unknown
      expires_in?: unknown
    } | null
    if (res.statusCode !== 200 || typeof body?.access_token !== 'string')
      throw new TransientError(`token endpoint answered ${res.statusCode}`)
    const lifetimeMs =
      (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600) * 1000
    // Early by refresh_before_s, but never so early that a short-lived token is fetched per call.
    const earlyMs = Math.min((this.auth.refresh_before_s ?? 30) * 1000, lifetimeMs / 2)
    this.#token = { value: body.access_token, refreshAt: this.now() + lifetimeMs - earlyMs }
    return body.access_token
  }
}

/** The process's token caches, one per (token URL, client, scope): checks with one client share it. */
export class TokenCaches {
  readonly #caches = new Map<string, TokenCache>()
  constructor(
    readonly now: () => number = Date.now,
    readonly onFetch: (host: string) => void = () => {},
  ) {}
  for(auth: OAuth): TokenCache {
    const key = `${auth.token_url}\u0000${auth.client_id}\u0000${auth.scope ?? ''}\u0000${auth.audience ?? ''}`
    let c = this.#caches.get(key)
    if (!c) {
      c = new TokenCache(auth, this.now, this.onFetch)
      this.#caches.set(key, c)
    }
    return c
  }
  get fetches(): number {
    let n = 0
    for (const c of this.#caches.values()) n += c.fetches
    return n
  }
}
