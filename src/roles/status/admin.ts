import type { FastifyInstance, FastifyRequest } from 'fastify'
import Type from 'typebox'
import type { SabtConfig } from '../../config/campaigns.js'
import type { Pool } from '../../db/pool.js'
import type { AdminAuth } from '../../http/auth.js'
import { ApiError } from '../../http/errors.js'
import type { MqClient } from '../../mq/connection.js'
import type { Publisher } from '../../mq/publisher.js'
import type { Logger } from '../../observability/logger.js'
import { auditLookup, auditReplay, deadList, lookupForOperator, replayDead } from '../../operations/index.js'
import type { Sealer } from '../../privacy/sealing.js'
import type { LiveStats } from './live.js'

export interface AdminRouteOptions {
  mq: MqClient
  pool: Pool
  /** Reads that may lag (a replica): lookups. Defaults to pool. */
  readPool?: Pool
  publisher: Publisher
  config: SabtConfig
  log: Logger
  /** Operator token (bearer) or dashboard session cookie. */
  auth: AdminAuth
  live?: LiveStats
  sealer?: Sealer
  queuedWindowMs?: number
}

/**
 * Operator endpoints, behind the admin token (bearer header, or the dashboard's session cookie):
 * the dead letters and replaying them, the live numbers, and lookup by id or national id.
 */
export async function adminRoutes(app: FastifyInstance, opts: AdminRouteOptions): Promise<void> {
  const { auth } = opts
  const guard = auth.guard()
  const actor = (request: FastifyRequest) => ({ operator: auth.operatorOf(request).name, client: request.ip })
  const security = [{ adminToken: [] }]
  const checkNames = [...opts.config.checks.keys(), 'callback']

  app.get(
    '/admin/dead',
    {
      onRequest: guard,
      schema: {
        tags: ['admin'],
        operationId: 'listDeadLetters',
        summary: 'Dead-lettered checks: counts by check and the latest entries',
        security,
        querystring: Type.Object(
          {
            check: Type.Optional(Type.String({ enum: checkNames })),
            limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: opaque('counts by check and the latest entries (`sabt dead list` prints the same)'),
          401: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request) => {
      const q = request.query as { check?: string; limit?: string }
      return deadList(opts.mq, opts.pool, { check: q.check, limit: q.limit ? Number(q.limit) : 100 })
    },
  )

  app.post(
    '/admin/dead/replay',
    {
      onRequest: guard,
      schema: {
        tags: ['admin'],
        operationId: 'replayDeadLetters',
        summary: 'Move dead-lettered checks back to their queue with fresh attempts',
        security,
        body: Type.Object(
          {
            check: Type.Optional(Type.String({ enum: checkNames })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            replayed: Type.Integer(),
            kept: Type.Integer(),
            unreadable: Type.Integer(),
            superseded: Type.Integer({
              description:
                'failed records not asked again: another record of the same person holds their place',
            }),
            unconfigured: Type.Integer(),
          }),
          401: { $ref: 'ErrorBody#' },
          503: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request) => {
      const body = (request.body ?? {}) as { check?: string; limit?: number }
      if (!opts.mq.connected) throw new ApiError('SABT_BROKER_UNAVAILABLE', undefined, 5)
      const result = await replayDead(opts, body)
      await auditReplay(opts.pool, opts.log, actor(request), { kind: 'check', ...body, ...result })
      return result
    },
  )

  const live = opts.live
  if (live) {
    app.get(
      '/admin/live',
      {
        onRequest: guard,
        schema: {
          tags: ['admin'],
          operationId: 'getLiveView',
          summary:
            'What the dashboard shows: rates from every process, queue depths, providers, processes, counts by status',
          security,
          querystring: Type.Object(
            { since: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })) },
            { additionalProperties: false },
          ),
          response: {
            200: opaque('series since the given time, queues, providers, processes, counts by status'),
            401: { $ref: 'ErrorBody#' },
          },
        },
      },
      async (request) => {
        const since = Number((request.query as { since?: string }).since ?? 0)
        return {
          at: new Date().toISOString(),
          broker: opts.mq.connected ? 'up' : 'down',
          series: live.series(since),
          intake: live.intake(),
          queues: live.queues(),
          providers: live.providers(),
          held: live.held(),
          processes: live.processes(),
          counts: await live.statusCounts(),
        }
      },
    )
  }

  const sealer = opts.sealer
  if (sealer) {
    app.post(
      '/admin/lookup',
      {
        onRequest: guard,
        schema: {
          tags: ['admin'],
          operationId: 'lookupRegistration',
          summary:
            'Find a registration by id or by national id (POST: a national id never goes in a URL); national ids and mobiles come back masked, except the one searched for',
          security,
          body: Type.Object(
            { q: Type.String({ minLength: 1, maxLength: 64 }) },
            { additionalProperties: false },
          ),
          response: {
            200: opaque('the registrations found, with their checks; personal data masked'),
            401: { $ref: 'ErrorBody#' },
          },
        },
      },
      async (request) => {
        const found = await lookupForOperator(
          {
            pool: opts.readPool ?? opts.pool,
            config: opts.config,
            sealer,
            queuedWindowMs: opts.queuedWindowMs ?? 900_000,
          },
          (request.body as { q: string }).q,
        )
        await auditLookup(opts.pool, opts.log, actor(request), found)
        return found
      },
    )
  }
}

/**
 * An operator-facing answer documented by its description only: `additionalProperties` keeps the
 * serializer from dropping what the schema does not list (these shapes follow the dashboard).
 */
function opaque(description: string) {
  return { description, type: 'object', additionalProperties: true } as const
}
