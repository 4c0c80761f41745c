import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import { apiDocs } from './api-docs.js'
import { clientErrorHandler } from './client-errors.js'
import { errorAnswers } from './error-answers.js'
import { health, type Readiness } from './health.js'
import { jsonBody } from './json-body.js'
import { httpLimits } from './limits.js'
import { requestMetrics } from './request-metrics.js'
import { BODY_VALIDATION } from './validation.js'

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
    clientErrorHandler: clientErrorHandler(limits),
  })
  // At the connection limit, idle keep-alive sockets make room: they must not lock out new clients.
  app.server.maxConnections = limits.maxConnections
  app.server.on('drop', () => app.server.closeIdleConnections())

  await app.register(jsonBody)
  await app.register(errorAnswers)
  await app.register(requestMetrics, { metrics: opts.metrics })
  await app.register(apiDocs)
  await app.register(health, { readiness: opts.readiness, roles: opts.roles, metrics: opts.metrics })
  return app
}

export { type Readiness, ReadinessSchema } from './health.js'
export { type HttpLimits, httpLimits } from './limits.js'
