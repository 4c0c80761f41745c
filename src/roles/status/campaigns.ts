import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { SabtConfig } from '../../config/campaigns.js'
import { campaignCounts, drawState, findDraw, loadResults } from '../../db/draws.js'
import type { Pool } from '../../db/pool.js'
import { ApiError } from '../../http/errors.js'
import type { Metrics } from '../../observability/metrics.js'

export interface CampaignRouteOptions {
  pool: Pool
  config: SabtConfig
  metrics: Metrics
  /** How often the scarce campaigns' gauges are read from PostgreSQL (0: never). */
  metricsEveryMs?: number
}

const DRAW_STATE = { not_committed: 0, committed: 1, revealed: 2 } as const

/** sabt_campaign_places and sabt_draw_state, from the database (the truth across every process and the CLI). */
export async function refreshScarceMetrics(pool: Pool, config: SabtConfig, metrics: Metrics): Promise<void> {
  for (const c of config.campaigns.values()) {
    if (!c.scarce) continue
    const counts = await campaignCounts(pool, c)
    metrics.campaignPlaces.set({ campaign: c.slug, kind: 'capacity' }, c.scarce.capacity)
    for (const [kind, v] of Object.entries(counts)) metrics.campaignPlaces.set({ campaign: c.slug, kind }, v)
    if (c.scarce.allocation === 'lottery')
      metrics.drawState.set({ campaign: c.slug }, DRAW_STATE[drawState(await findDraw(pool, c.slug))])
  }
}

const Slug = Type.String({ maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]{0,62}$' })

const CampaignView = Type.Object(
  {
    campaign: Type.String(),
    title: Type.String(),
    opens_at: Type.Union([Type.String(), Type.Null()]),
    closes_at: Type.Union([Type.String(), Type.Null()]),
    capacity: Type.Union([Type.Integer(), Type.Null()]),
    allocation: Type.Union([Type.Literal('first_come'), Type.Literal('lottery'), Type.Null()]),
    draw_at: Type.Union([Type.String(), Type.Null()]),
    draw: Type.Object(
      {
        state: Type.Union([
          Type.Literal('not_committed'),
          Type.Literal('committed'),
          Type.Literal('revealed'),
        ]),
        commitment: Type.Union([Type.String(), Type.Null()], {
          description: 'hex SHA-256 of the seed, fixed before the campaign opened',
        }),
        committed_at: Type.Union([Type.String(), Type.Null()]),
        drawn_at: Type.Union([Type.String(), Type.Null()]),
        participants_sha256: Type.Union([Type.String(), Type.Null()]),
      },
      { additionalProperties: false },
    ),
    counts: Type.Object(
      {
        accepted: Type.Integer(),
        unsettled: Type.Integer(),
        winners: Type.Integer(),
        waitlisted: Type.Integer(),
        released: Type.Integer(),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
)

/**
 * Public pages of a campaign (decision 019): what it offers and how it allocates, the lottery's
 * commitment before the draw, and after it the results anyone can verify — ids, ranks, outcomes,
 * the revealed seed; never anything of a person.
 */
export async function campaignRoutes(app: FastifyInstance, opts: CampaignRouteOptions): Promise<void> {
  const every = opts.metricsEveryMs ?? 5000
  if (every > 0 && [...opts.config.campaigns.values()].some((c) => c.scarce)) {
    const refresh = () =>
      refreshScarceMetrics(opts.pool, opts.config, opts.metrics).catch((err: Error) =>
        app.log.warn({ event: 'scarce.metrics_failed', err: err.message }),
      )
    const timer = setInterval(refresh, every)
    timer.unref()
    app.addHook('onReady', async () => void refresh())
    app.addHook('onClose', async () => clearInterval(timer))
  }
  const campaignOf = (slug: string) => {
    const c = opts.config.campaigns.get(slug)
    if (!c) throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'No such campaign')
    return c
  }

  app.get(
    '/v1/campaigns/:campaign',
    {
      schema: {
        tags: ['campaigns'],
        operationId: 'getCampaign',
        security: [],
        summary: 'A campaign: times, capacity, allocation, the draw commitment, counts',
        params: Type.Object({ campaign: Slug }),
        response: { 200: CampaignView, 404: { $ref: 'ErrorBody#' } },
      },
    },
    async (request, reply) => {
      const c = campaignOf((request.params as { campaign: string }).campaign)
      const d = c.scarce?.allocation === 'lottery' ? await findDraw(opts.pool, c.slug) : null
      const counts = await campaignCounts(opts.pool, c)
      reply.header('cache-control', 'public, max-age=5')
      const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString())
      return {
        campaign: c.slug,
        title: c.title,
        opens_at: iso(c.opensAt),
        closes_at: iso(c.closesAt),
        capacity: c.scarce?.capacity ?? null,
        allocation: c.scarce?.allocation ?? null,
        draw_at: iso(c.scarce?.drawAt ?? null),
        draw: {
          state: drawState(d),
          commitment: d?.commitment ?? null,
          committed_at: d?.committed_at.toISOString() ?? null,
          drawn_at: d?.drawn_at?.toISOString() ?? null,
          participants_sha256: d?.participants_sha256 ?? null,
        },
        counts,
      }
    },
  )

  app.get(
    '/v1/campaigns/:campaign/results',
    {
      schema: {
        tags: ['campaigns'],
        operationId: 'getCampaignResults',
        security: [],
        summary: "A lottery's results: seed, commitment, every participant's id → rank → won / waitlisted",
        description:
          'The same document as `sabt draw export`; check it with `sabt draw verify --results FILE` or the standalone script in docs/draw-verify.md. 404 before the draw.',
        params: Type.Object({ campaign: Slug }),
        response: {
          200: {
            description:
              'seed, commitment and every participant (docs/draw-verify.md describes the document)',
            type: 'object',
            additionalProperties: true,
          },
          404: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request, reply) => {
      const c = campaignOf((request.params as { campaign: string }).campaign)
      const results = c.scarce?.allocation === 'lottery' ? await loadResults(opts.pool, c.slug) : null
      if (!results) throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'Not drawn (or not a lottery)')
      // Built as one string: a large draw's list would be slow through the schema serializer.
      reply.header('cache-control', 'public, max-age=60').type('application/json; charset=utf-8')
      return reply.send(JSON.stringify(results))
    },
  )
}
