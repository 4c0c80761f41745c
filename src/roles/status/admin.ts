import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { SabtConfig } from '../../config/campaigns.js'
import type { Pool } from '../../db/pool.js'
import { requireAdmin } from '../../http/auth.js'
import { ApiError } from '../../http/errors.js'
import type { MqClient } from '../../mq/connection.js'
import type { Publisher } from '../../mq/publisher.js'
import type { Logger } from '../../observability/logger.js'
import { deadList, replayDead } from '../checker/dead-letters.js'

export interface AdminRouteOptions {
  mq: MqClient
  pool: Pool
  publisher: Publisher
  config: SabtConfig
  log: Logger
  adminToken: string
}

/** Operator actions, behind the admin token: the dead letters, and replaying them. */
export async function adminRoutes(app: FastifyInstance, opts: AdminRouteOptions): Promise<void> {
  const guard = requireAdmin(opts.adminToken)
  const security = [{ adminToken: [] }]
  const checkNames = [...opts.config.checks.keys(), 'callback']

  app.get(
    '/admin/dead',
    {
      preHandler: guard,
      schema: {
        tags: ['admin'],
        summary: 'Dead-lettered checks: counts by check and the latest entries',
        security,
        querystring: Type.Object(
          {
            check: Type.Optional(Type.String({ enum: checkNames })),
            limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
          },
          { additionalProperties: false },
        ),
        response: { 401: { $ref: 'ErrorBody#' } },
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
      preHandler: guard,
      schema: {
        tags: ['admin'],
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
          200: Type.Object({ replayed: Type.Integer(), kept: Type.Integer(), unreadable: Type.Integer() }),
          401: { $ref: 'ErrorBody#' },
          503: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request) => {
      const body = (request.body ?? {}) as { check?: string; limit?: number }
      if (!opts.mq.connected) throw new ApiError('SABT_BROKER_UNAVAILABLE', undefined, 5)
      return replayDead(opts, body)
    },
  )
}
