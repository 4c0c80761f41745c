import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { SabtConfig } from '../../config/campaigns.js'
import type { Pool } from '../../db/pool.js'
import { ApiError } from '../../http/errors.js'
import type { Metrics } from '../../observability/metrics.js'
import { isUuid, lookupThroughReplica, publicStatus } from '../../operations/index.js'

export interface StatusRouteOptions {
  pool: Pool
  /** The primary, when `pool` is a replica: asked what the replica does not know yet. */
  primary?: Pool
  config: SabtConfig
  queuedWindowMs: number
  /** Counts answers by allocation (scarce campaigns). */
  metrics?: Metrics
}

const PublicCheckView = Type.Object(
  {
    check: Type.String(),
    outcome: Type.Union(
      [Type.Literal('pending'), Type.Literal('passed'), Type.Literal('failed'), Type.Literal('skipped')],
      {
        description:
          'pending until answered (also while a dead-lettered check waits for its replay); skipped: not needed, the verdict came first',
      },
    ),
    reason: Type.Optional(
      Type.Object(
        {
          code: Type.String({
            description: "the provider's reason code, e.g. not_found, name_mismatch, not_owner",
          }),
          text: Type.Union([Type.String(), Type.Null()], {
            description: "the provider's own words, if it gave any",
          }),
        },
        { additionalProperties: false, description: 'why a failed check said no' },
      ),
    ),
  },
  { additionalProperties: false },
)

/** In a scarce campaign only (decision 019). */
export const AllocationView = Type.Object(
  {
    state: Type.Union(
      [
        Type.Literal('won'),
        Type.Literal('waitlisted'),
        Type.Literal('released'),
        Type.Literal('not_drawn'),
        Type.Literal('pending'),
      ],
      {
        description:
          'won: holds a place; waitlisted: on the waiting list at `position` (1 = next); released: gave its place up; not_drawn: accepted, the lottery has not been drawn (or ran before it was accepted); pending: not final yet — being checked, or (first_come) an earlier registration is still being checked',
      },
    ),
    position: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
)

export const RegistrationStatus = Type.Object(
  {
    id: Type.String(),
    campaign: Type.Optional(Type.String()),
    status: Type.Union(
      [
        Type.Literal('queued'),
        Type.Literal('recorded'),
        Type.Literal('verifying'),
        Type.Literal('accepted'),
        Type.Literal('rejected'),
        Type.Literal('failed'),
        Type.Literal('waiting'),
        Type.Literal('duplicate'),
      ],
      {
        description:
          'queued → recorded → verifying → accepted | rejected | failed; waiting: kept beside an earlier submission of the same person that is still being checked (checked itself if that one is rejected or fails); duplicate: the person already holds a registration in this campaign',
      },
    ),
    received_at: Type.Optional(Type.String()),
    recorded_at: Type.Optional(Type.String()),
    verdict_at: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    checks: Type.Optional(Type.Array(PublicCheckView)),
    allocation: Type.Optional(AllocationView),
  },
  { additionalProperties: false },
)

export async function statusRoutes(app: FastifyInstance, opts: StatusRouteOptions): Promise<void> {
  // Every answer is about one person's registration: never kept by a cache, never sniffed.
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('cache-control', 'no-store')
    reply.header('x-content-type-options', 'nosniff')
    return payload
  })

  app.get(
    '/v1/registrations/:id',
    {
      schema: {
        tags: ['status'],
        operationId: 'getRegistration',
        summary: 'Follow a registration',
        security: [],
        description:
          "200 with its own status and, per check, pending / passed / failed once recorded; a duplicate or a waiting submission says so and nothing of the person's other registration; 202 `queued` when the id was minted minutes ago and is not recorded yet; 404 otherwise.",
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
      if (view.kind === 'record' && view.allocation)
        opts.metrics?.allocationAnswers.inc({ allocation: view.allocation.state })
      return publicStatus(view)
    },
  )
}
