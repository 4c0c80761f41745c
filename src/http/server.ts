import { isUtf8 } from 'node:buffer'
import type { Socket } from 'node:net'
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from 'fastify'
import sjson from 'secure-json-parse'
import type { FieldError } from '../domain/registration.js'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import {
  ApiError,
  ErrorBodySchema,
  type ErrorCode,
  errorCatalogueMarkdown,
  fieldErrorsFromAjv,
} from './errors.js'
import { BODY_VALIDATION } from './validation.js'

export interface Readiness {
  ready: boolean
  components: Record<string, 'up' | 'down'>
}

export interface ServerOptions {
  log: Logger
  metrics: Metrics
  bodyLimit: number
  /** The whole request (headers and body) must arrive within this, or 408 and the socket is closed. */
  requestTimeoutMs: number
  /** The request line and headers must arrive within this (capped at requestTimeoutMs): slowloris. */
  headersTimeoutMs?: number
  /** Request line + headers larger than this get 431. */
  maxHeaderBytes?: number
  /** Open sockets per process; past it new ones are dropped, after idle keep-alive ones are closed. */
  maxConnections?: number
  /** Which dependencies this process needs to be ready (its roles decide). */
  readiness: () => Promise<Readiness>
  roles: readonly string[]
  /**
   * Addresses or CIDRs of the proxies whose X-Forwarded-For/-Proto/-Host are believed (none when
   * empty): what a client connecting from anywhere else writes in them changes nothing.
   */
  trustProxy?: readonly string[]
}

/** The Content-Security-Policy of /docs (Swagger UI), as strict as the dashboard's. */
export const DOCS_CSP =
  "default-src 'self'; base-uri 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; frame-ancestors 'none'; form-action 'self'"

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'SABT_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'SABT_BODY_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'SABT_INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'SABT_INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'SABT_BAD_REQUEST',
}

/**
 * Builds the HTTP server shared by the roles that answer HTTP (gateway, status, and every role's
 * health and metrics). Built here, listened on elsewhere: tests use `app.inject()` with no port.
 *
 * Input is refused, never repaired: Ajv does not strip unknown fields (`removeAdditional: false`,
 * schemas say `additionalProperties: false`), does not coerce types, and reports every error.
 */
export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const limits = httpLimits(opts)
  const app = Fastify({
    // Node's own protections against slow and oversized requests (see docs/decisions/010-slow-clients.md).
    http: {
      maxHeaderSize: limits.maxHeaderBytes,
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: limits.checkEveryMs,
    },
    loggerInstance: opts.log as unknown as FastifyBaseLogger,
    // One log line per request would cost more than the request: metrics count them instead.
    logController: new LogController({ disableRequestLogging: true }),
    // No per-request child logger either (pino child + redaction per request, bench --profile):
    // the few lines a request may log carry their own context.
    childLoggerFactory: (logger) => logger,
    bodyLimit: opts.bodyLimit,
    requestTimeout: opts.requestTimeoutMs,
    keepAliveTimeout: 75_000, // longer than the edge proxy's idle timeout, so it closes first
    connectionTimeout: opts.requestTimeoutMs * 3,
    routerOptions: { maxParamLength: 200 },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // Addresses, never a hop count or `true`: a hop count believes whoever connects directly.
    trustProxy: opts.trustProxy?.length ? [...opts.trustProxy] : false,
    ajv: {
      customOptions: BODY_VALIDATION,
    },
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed HTTP, headers too large, or a client too slow to send its request.
      if (socket.destroyed) return
      const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
      const [status, code, fieldError]: [string, ErrorCode, FieldError] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [
              '408 Request Timeout',
              'SABT_REQUEST_TIMEOUT',
              // A response object exists once the headers are in: then it is the body that was late.
              inFlight
                ? {
                    field: '(body)',
                    rule: 'timeout',
                    message: `must arrive within ${limits.requestTimeoutMs} ms`,
                  }
                : {
                    field: '(headers)',
                    rule: 'timeout',
                    message: `must arrive within ${limits.headersTimeoutMs} ms`,
                  },
            ]
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? [
                '431 Request Header Fields Too Large',
                'SABT_HEADERS_TOO_LARGE',
                {
                  field: '(headers)',
                  rule: 'max_bytes',
                  message: `must be at most ${limits.maxHeaderBytes} bytes`,
                },
              ]
            : [
                '400 Bad Request',
                'SABT_BAD_REQUEST',
                { field: '(request)', rule: 'http', message: 'must be a well-formed HTTP/1.1 request' },
              ]
      // Answer only when no response has started on this socket (Node's own rule: a second status
      // line in the middle of a response would corrupt it), then let go of the socket once the answer
      // is flushed. `end()` alone is not enough: the HTTP server allows half-open sockets, so a client
      // that keeps sending would keep it (and its slot) forever.
      if (socket.writable && !inFlight?.headersSent) {
        const body = JSON.stringify(new ApiError(code, [fieldError]).body())
        socket.end(
          `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        )
      }
      socket.destroySoon()
    },
  })
  // At the connection limit, idle keep-alive sockets make room: they must not lock out new clients.
  app.server.maxConnections = limits.maxConnections
  app.server.on('drop', () => app.server.closeIdleConnections())

  // JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset is refused before it is read,
  // rather than decoded as something its sender did not mean.
  app.addHook('preParsing', async (request, _reply, payload) => {
    const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers['content-type'] ?? '')?.[1]
    if (charset !== undefined && !/^utf-?8$/i.test(charset))
      throw new ApiError('SABT_UNSUPPORTED_MEDIA_TYPE', [
        { field: 'content-type', rule: 'charset', message: 'must be utf-8 (or not given)' },
      ])
    return payload
  })

  // JSON only, valid UTF-8 only. (Fastify also parses text/plain by default: not here.)
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    const buf = body as Buffer
    if (!isUtf8(buf)) {
      done(
        new ApiError('SABT_INVALID_ENCODING', [
          { field: '(body)', rule: 'utf8', message: 'must be valid UTF-8' },
        ]),
        undefined,
      )
      return
    }
    if (buf.length === 0) {
      done(
        new ApiError('SABT_INVALID_JSON', [
          { field: '(body)', rule: 'json', message: 'must be a JSON document' },
        ]),
        undefined,
      )
      return
    }
    try {
      done(null, sjson.parse(buf.toString('utf8'), { protoAction: 'error', constructorAction: 'error' }))
    } catch (err) {
      const forbidden = /prototype property|constructor property/i.test((err as Error).message)
      done(
        new ApiError(
          'SABT_INVALID_JSON',
          forbidden
            ? [
                {
                  field: '(body)',
                  rule: 'forbidden_key',
                  message: 'must not contain __proto__ or constructor.prototype',
                },
              ]
            : [{ field: '(body)', rule: 'json', message: 'must be a JSON document' }],
        ),
        undefined,
      )
    }
  })

  app.addSchema(ErrorBodySchema)
  app.addSchema(ReadinessSchema)

  app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
    let api: ApiError
    if (error instanceof ApiError) api = error
    else if ((error as FastifyError).validation) {
      const fe = error as FastifyError
      const where = !fe.validationContext || fe.validationContext === 'body' ? '' : fe.validationContext
      api = new ApiError('SABT_VALIDATION', fieldErrorsFromAjv(fe.validation as never, where))
    } else if ((error as FastifyError).code && FASTIFY_CODES[(error as FastifyError).code]) {
      const code = FASTIFY_CODES[(error as FastifyError).code]!
      const rule =
        code === 'SABT_BODY_TOO_LARGE'
          ? { field: '(body)', rule: 'max_bytes', message: 'is larger than the body limit' }
          : code === 'SABT_UNSUPPORTED_MEDIA_TYPE'
            ? { field: 'content-type', rule: 'media_type', message: 'must be application/json' }
            : { field: '(body)', rule: 'json', message: 'must be a JSON document' }
      api = new ApiError(code, [rule])
    } else if ((error as FastifyError).statusCode && (error as FastifyError).statusCode! < 500) {
      api = new ApiError('SABT_BAD_REQUEST', undefined, undefined, (error as Error).message)
    } else {
      request.log.error(
        { event: 'http.internal_error', err: error, route: request.routeOptions.url },
        'unhandled error',
      )
      api = new ApiError('SABT_INTERNAL')
    }
    if (api.retryAfterS) reply.header('retry-after', String(api.retryAfterS))
    // Answered before the body was read (415, 413…): close, or Node would read and discard the rest
    // of it to keep the connection, however large or slow it is.
    if (!request.raw.complete) reply.header('connection', 'close')
    reply.code(api.status).type('application/json').send(api.body())
  })

  app.setNotFoundHandler((_request, reply) => {
    const api = new ApiError('SABT_NOT_FOUND')
    reply.code(404).send(api.body())
  })

  // Counts and latency of every answer, by route template (never by raw URL: ids would explode it).
  // The labelled children are looked up once per (route, method, status), not hashed per request.
  const children = new Map<string, { count: { inc(): void }; duration: { observe(v: number): void } }>()
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const key = `${route}\u0000${request.method}\u0000${reply.statusCode}`
    let child = children.get(key)
    if (!child) {
      const labels = { route, method: request.method, status: String(reply.statusCode) }
      child = {
        count: opts.metrics.httpRequests.labels(labels),
        duration: opts.metrics.httpDuration.labels(labels),
      }
      children.set(key, child)
    }
    child.count.inc()
    child.duration.observe(reply.elapsedTime / 1000)
    done()
  })

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Sabt API',
        version: '1',
        license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
        description: `Sabt takes registrations at surge rates and verifies them in the background.\n\n### Errors\n\nEvery error answers JSON \`{statusCode, code, message, errors?: [{field, rule, message}]}\`.\n\n${errorCatalogueMarkdown()}`,
      },
      // Relative: the document is served by the deployment it describes, behind whatever host it has.
      servers: [{ url: '/', description: 'this deployment' }],
      components: {
        securitySchemes: {
          adminToken: {
            type: 'http',
            scheme: 'bearer',
            description:
              'an operator token (sabt operators add NAME); before the first operator exists, SABT_ADMIN_TOKEN',
          },
          partnerKey: {
            type: 'http',
            scheme: 'bearer',
            description: 'a partner API key (sabt keys create), also accepted as X-Api-Key',
          },
        },
      },
    },
    // OpenAPI 3.0's Schema Object has no `propertyNames` (JSON Schema 2019+ only): the validator
    // keeps it, the published document carries it as an extension a partner's tooling accepts.
    transformObject: (doc) =>
      renameKey(
        'openapiObject' in doc ? doc.openapiObject : doc.swaggerObject,
        'propertyNames',
        'x-property-names',
      ),
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (json.$id as string) || `def-${i}`,
    },
  })
  // /docs shares the dashboard's origin: the same strict policy (Swagger UI's scripts are files,
  // no inline script or eval; its inline styles need 'unsafe-inline' for styles only), no framing,
  // and no call to the online validator (validatorUrl: null).
  await app.register(fastifySwaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', validatorUrl: null },
    staticCSP: DOCS_CSP,
    uiHooks: {
      onRequest: (_request, reply, done) => {
        reply.header('x-frame-options', 'DENY')
        done()
      },
    },
  })

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        operationId: 'getHealth',
        summary: 'The process is alive',
        security: [],
        response: { 200: { type: 'object', properties: { status: { type: 'string' } } } },
      },
    },
    async () => ({ status: 'ok' }),
  )

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        operationId: 'getReadiness',
        security: [],
        summary: 'The dependencies this process needs (broker, database) are reachable',
        response: {
          200: { $ref: 'Readiness#' },
          503: { $ref: 'Readiness#' },
        },
      },
    },
    async (_request, reply) => {
      const r = await opts.readiness()
      reply.code(r.ready ? 200 : 503)
      return { status: r.ready ? 'ready' : 'not_ready', roles: opts.roles, components: r.components }
    },
  )

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(opts.metrics.registry.contentType)
    return opts.metrics.registry.metrics()
  })

  return app
}

export interface HttpLimits {
  requestTimeoutMs: number
  headersTimeoutMs: number
  /** How often Node looks for requests past their timeouts: the timeouts' granularity. */
  checkEveryMs: number
  maxHeaderBytes: number
  maxConnections: number
}

/**
 * The slow-client settings, derived once. Node checks request and header deadlines on a timer
 * (30 s by default), so a 1 s timeout would really be up to 31 s: the timer runs at a quarter of
 * the shorter deadline, between 25 ms and 1 s.
 */
export function httpLimits(opts: {
  requestTimeoutMs: number
  headersTimeoutMs?: number | undefined
  maxHeaderBytes?: number | undefined
  maxConnections?: number | undefined
}): HttpLimits {
  const headersTimeoutMs = Math.min(opts.headersTimeoutMs ?? 5000, opts.requestTimeoutMs)
  return {
    requestTimeoutMs: opts.requestTimeoutMs,
    headersTimeoutMs,
    checkEveryMs: Math.max(25, Math.min(1000, Math.floor(headersTimeoutMs / 4))),
    maxHeaderBytes: opts.maxHeaderBytes ?? 16_384,
    maxConnections: opts.maxConnections ?? 10_000,
  }
}

export const ReadinessSchema = {
  $id: 'Readiness',
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    roles: { type: 'array', items: { type: 'string' } },
    components: { type: 'object', additionalProperties: { type: 'string', enum: ['up', 'down'] } },
  },
} as const

/** A copy of a JSON document with every object key `from` renamed `to`, at any depth. */
function renameKey<T>(value: T, from: string, to: string): T {
  if (Array.isArray(value)) return value.map((v) => renameKey(v, from, to)) as T
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k === from ? to : k] = renameKey(v, from, to)
  return out as T
}
