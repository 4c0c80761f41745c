import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ProviderName } from './answers.js'

/**
 * Two providers shaped the way real ones are, for docs/providers.md's worked examples and the
 * tests of authentication — the same people, answers and knobs as /identity and /mobile:
 *
 * - `POST /oauth/token` — OAuth2 client credentials (Basic auth or form fields); tokens expire
 *   after `token_ttl_s` and can be revoked (admin), after which calls with them get 401.
 * - `POST /v2/mobile` — a JSON API behind those tokens:
 *   `{"subscriber": {"msisdn", "national_code"}}` → `{"owner": true}` or
 *   `{"owner": false, "error": {"code": "NOT_OWNER" | "NUMBER_INACTIVE", "message"}}`.
 * - `POST /v2/identity` — a signed API with a nested answer: `X-Timestamp` (unix seconds, within
 *   5 minutes) and `X-Signature` = hex HMAC-SHA256 over `POST\n/v2/identity\n<timestamp>\n<hex
 *   SHA-256 of the body>`; `{"person": {"nid", "given_name", "family_name", "birth_date"}}` →
 *   `{"data": {"verification": {"result": "MATCH" | "NO_MATCH", "reason": {"code", "description"}}}}`.
 */
export interface RealApiOptions {
  clientId: string
  clientSecret: string
  hmacSecret: string
  tokenTtlS: number
}

export const REAL_API_DEFAULTS: RealApiOptions = {
  clientId: 'sabt',
  clientSecret: 'simulator-client-secret',
  hmacSecret: 'simulator-hmac-secret',
  tokenTtlS: 3600,
}

export interface RealApiStats {
  tokens_issued: number
  token_refused: number
  unauthorized: number
  signatures_verified: number
  signatures_refused: number
}

/** Answers a question as the named plain provider would (its knobs, stats and answers). */
export type Ask = (
  provider: ProviderName,
  question: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
) => Promise<Record<string, unknown> | undefined>

export class RealApis {
  options: RealApiOptions
  stats: RealApiStats = RealApis.zero()
  readonly #tokens = new Map<string, number>() // token → expires at (ms)

  constructor(options: Partial<RealApiOptions> = {}) {
    this.options = { ...REAL_API_DEFAULTS, ...options }
  }

  static zero(): RealApiStats {
    return {
      tokens_issued: 0,
      token_refused: 0,
      unauthorized: 0,
      signatures_verified: 0,
      signatures_refused: 0,
    }
  }

  /** Every token issued so far stops working (calls with them get 401). */
  revokeTokens(): void {
    this.#tokens.clear()
  }

  reset(): void {
    this.stats = RealApis.zero()
  }

  issue(now = Date.now()): { access_token: string; token_type: string; expires_in: number } {
    const token = randomBytes(24).toString('base64url')
    this.#tokens.set(token, now + this.options.tokenTtlS * 1000)
    if (this.#tokens.size > 10_000) this.#tokens.delete(this.#tokens.keys().next().value!)
    this.stats.tokens_issued++
    return { access_token: token, token_type: 'Bearer', expires_in: this.options.tokenTtlS }
  }

  validToken(header: string | undefined, now = Date.now()): boolean {
    const m = /^Bearer (.+)$/.exec(header ?? '')
    const exp = m ? this.#tokens.get(m[1]!) : undefined
    return exp !== undefined && exp > now
  }

  verifySignature(raw: string, path: string, headers: FastifyRequest['headers'], now = Date.now()): boolean {
    const ts = String(headers['x-timestamp'] ?? '')
    const sig = String(headers['x-signature'] ?? '')
    if (!/^[0-9]{1,12}$/.test(ts) || Math.abs(now / 1000 - Number(ts)) > 300) return false
    const canonical = `POST\n${path}\n${ts}\n${createHash('sha256').update(raw).digest('hex')}`
    const want = createHmac('sha256', this.options.hmacSecret).update(canonical).digest()
    const got = Buffer.from(sig, 'hex')
    return got.length === want.length && timingSafeEqual(got, want)
  }
}

function clientOf(request: FastifyRequest): { id: string; secret: string } | null {
  const basic = /^Basic (.+)$/.exec(request.headers.authorization ?? '')
  if (basic) {
    const [id, secret] = Buffer.from(basic[1]!, 'base64').toString().split(':')
    return id !== undefined && secret !== undefined
      ? { id: decodeURIComponent(id), secret: decodeURIComponent(secret) }
      : null
  }
  const form = request.body as Record<string, string> | undefined
  return form?.client_id && form.client_secret ? { id: form.client_id, secret: form.client_secret } : null
}

export async function realApiRoutes(app: FastifyInstance, opts: { apis: RealApis; ask: Ask }): Promise<void> {
  const { apis, ask } = opts
  // Raw bodies here only (a signature is over the bytes sent), and form bodies for the token endpoint.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    ;(request as FastifyRequest & { rawBody?: string }).rawBody = body as string
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(Object.assign(new Error('bad JSON'), { statusCode: 400 }), undefined)
    }
  })
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_r, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)))
  })

  app.post('/oauth/token', async (request, reply) => {
    const form = (request.body ?? {}) as Record<string, string>
    const client = clientOf(request)
    if (form.grant_type !== 'client_credentials')
      return reply.code(400).send({ error: 'unsupported_grant_type' })
    if (!client || client.id !== apis.options.clientId || client.secret !== apis.options.clientSecret) {
      apis.stats.token_refused++
      return reply.code(401).send({ error: 'invalid_client' })
    }
    return apis.issue()
  })

  app.post('/v2/mobile', async (request, reply) => {
    if (!apis.validToken(request.headers.authorization)) {
      apis.stats.unauthorized++
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer error="invalid_token"')
        .send({ error: 'invalid_token' })
    }
    const b = request.body as { subscriber?: { msisdn?: unknown; national_code?: unknown } } | null
    const a = await ask(
      'mobile',
      { national_id: b?.subscriber?.national_code, mobile: b?.subscriber?.msisdn },
      request,
      reply,
    )
    if (!a) return reply
    return a.match
      ? { owner: true }
      : { owner: false, error: { code: String(a.reason).toUpperCase(), message: a.reason_text } }
  })

  app.post('/v2/identity', async (request, reply) => {
    const raw = (request as FastifyRequest & { rawBody?: string }).rawBody ?? ''
    if (!apis.verifySignature(raw, '/v2/identity', request.headers)) {
      apis.stats.signatures_refused++
      return reply.code(401).send({ error: 'bad signature' })
    }
    apis.stats.signatures_verified++
    const p = (request.body as { person?: Record<string, unknown> } | null)?.person
    const a = await ask(
      'identity',
      {
        national_id: p?.nid,
        first_name: p?.given_name,
        last_name: p?.family_name,
        birth_date: p?.birth_date,
      },
      request,
      reply,
    )
    if (!a) return reply
    return {
      data: {
        verification: a.match
          ? { result: 'MATCH' }
          : {
              result: 'NO_MATCH',
              reason: { code: String(a.reason).toUpperCase(), description: a.reason_text },
            },
      },
    }
  })
}
