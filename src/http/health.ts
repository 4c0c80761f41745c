import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Metrics } from '../observability/metrics.js'

export interface Readiness {
  ready: boolean
  components: Record<string, 'up' | 'down'>
}

/** `/healthz` (alive), `/readyz` (what this process's roles need is reachable) and `/metrics` (Prometheus), on every role. */
export const health = fp(
  async (
    app: FastifyInstance,
    opts: { readiness: () => Promise<Readiness>; roles: readonly string[]; metrics: Metrics },
  ) => {
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
  },
  { name: 'sabt-health' },
)

export const ReadinessSchema = {
  $id: 'Readiness',
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    roles: { type: 'array', items: { type: 'string' } },
    components: { type: 'object', additionalProperties: { type: 'string', enum: ['up', 'down'] } },
  },
} as const
