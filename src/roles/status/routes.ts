import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { SabtConfig } from '../../config/campaigns.js'
import type { Pool } from '../../db/pool.js'
import { ApiError } from '../../http/errors.js'
import { isUuid, lookupThroughReplica } from './lookup.js'

export interface StatusRouteOptions {
  pool: Pool
  /** The primary, when `pool` is a replica: asked what the replica does not know yet. */
  primary?: Pool
  config: SabtConfig
  queuedWindowMs: number
}

const CheckView = Type.Object({
  check: Type.String(),
  outcome: Type.Union([
    Type.Literal('passed'),
    Type.Literal('failed'),
    Type.Literal('error'),
    Type.Literal('pending'),
    Type.Literal('skipped'),
  ]),
  attempts: Type.Integer(),
  latency_ms: Type.Union([Type.Integer(), Type.Null()]),
  last_error: Type.Union([Type.String(), Type.Null()]),
  finished_at: Type.Union([Type.String(), Type.Null()]),
})

const RegistrationStatus = Type.Object({
  id: Type.String(),
  campaign: Type.Optional(Type.String()),
  status: Type.String({
    description: 'queued | recorded | verifying | accepted | rejected | failed | duplicate',
  }),
  original_id: Type.Optional(Type.String({ description: 'For a duplicate: the registration it repeats' })),
  received_at: Type.Optional(Type.String()),
  recorded_at: Type.Optional(Type.String()),
  verdict_at: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  checks: Type.Optional(Type.Array(CheckView)),
})

export async function statusRoutes(app: FastifyInstance, opts: StatusRouteOptions): Promise<void> {
  app.get(
    '/v1/registrations/:id',
    {
      schema: {
        tags: ['status'],
        summary: 'Follow a registration',
        description:
          '200 with its status and checks once recorded (a duplicate answers `duplicate` with the original id); 202 `queued` when the id was minted minutes ago and is not recorded yet; 404 otherwise.',
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: {
          200: RegistrationStatus,
          202: RegistrationStatus,
          400: { $ref: 'ErrorBody#' },
          404: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string }
      if (!isUuid(id))
        throw new ApiError('SABT_INVALID_ID', [{ field: 'id', rule: 'uuid', message: 'must be a UUID' }])
      const view = await lookupThroughReplica(
        opts.pool,
        opts.primary ?? opts.pool,
        opts.config,
        id,
        opts.queuedWindowMs,
      )
      if (view.kind === 'unknown')
        throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'No such registration')
      if (view.kind === 'queued') reply.code(202)
      const { kind: _kind, ...body } = view
      return body
    },
  )
}
