import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { Campaign, SabtConfig } from '../../config/campaigns.js'
import { type CampaignCounts, campaignCounts, drawState, findDraw, loadResults } from '../../db/draws.js'
import { readWatermark } from '../../db/intake-watermark.js'
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
  let firstCome = false
  for (const c of config.campaigns.values()) {
    if (!c.scarce) continue
    const counts = await campaignCounts(pool, c)
    metrics.campaignPlaces.set({ campaign: c.slug, kind: 'capacity' }, c.scarce.capacity)
    for (const [kind, v] of Object.entries(counts)) metrics.campaignPlaces.set({ campaign: c.slug, kind }, v)
    if (c.scarce.allocation === 'lottery') {
      const d = await findDraw(pool, c.slug)
      metrics.drawState.set({ campaign: c.slug }, DRAW_STATE[drawState(d)])
      if (d?.draw_seconds != null) metrics.drawSeconds.set({ campaign: c.slug }, d.draw_seconds)
    } else firstCome = true
  }
  // first_come's finality waits for the intake watermark (decision 022): how far behind it is.
  if (firstCome) {
    const w = await readWatermark(pool)
    if (w) metrics.watermarkLag.set(Math.max(0, (Date.now() - w.getTime()) / 1000))
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
  // A public page under a surge: its counts (a count over the campaign's records) are read at most
  // once a second per campaign and process; the results document is built once per draw and
  // release, then served from memory.
  const countsCache = new Map<string, { at: number; counts: Promise<CampaignCounts> }>()
  const countsOf = (c: Campaign) => {
    const hit = countsCache.get(c.slug)
    if (hit && Date.now() - hit.at < 1000) return hit.counts
    const counts = campaignCounts(opts.pool, c)
    countsCache.set(c.slug, { at: Date.now(), counts })
    counts.catch(() => countsCache.delete(c.slug))
    return counts
  }
  const resultsCache = new Map<string, { version: string; text: string }>()
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
      const counts = await countsOf(c)
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
          200: Type.Object(
            {
              format: Type.Literal('sabt-draw-results/1'),
              campaign: Type.String(),
              capacity: Type.Integer(),
              commitment: Type.String(),
              seed: Type.String({ description: 'hex, revealed by the draw' }),
              drawn_at: Type.String(),
              participants_sha256: Type.String(),
              ranking: Type.String(),
              participants: Type.Array(
                Type.Object({
                  id: Type.String(),
                  rank: Type.Integer(),
                  result: Type.Union([Type.Literal('won'), Type.Literal('waitlisted')]),
                }),
              ),
              releases: Type.Array(
                Type.Object({
                  released: Type.String(),
                  promoted: Type.Union([Type.String(), Type.Null()]),
                  at: Type.String(),
                }),
              ),
            },
            { description: 'Sent pre-serialized (one string): the schema documents it' },
          ),
          404: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request, reply) => {
      const c = campaignOf((request.params as { campaign: string }).campaign)
      const v =
        c.scarce?.allocation === 'lottery'
          ? (
              await opts.pool.query<{ version: string }>(
                `SELECT drawn_at::text || '/' || (SELECT count(*) FROM releases WHERE campaign = $1) AS version
                 FROM draws WHERE campaign = $1 AND drawn_at IS NOT NULL`,
                [c.slug],
              )
            ).rows[0]?.version
          : undefined
      if (!v) throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'Not drawn (or not a lottery)')
      let cached = resultsCache.get(c.slug)
      if (cached?.version !== v) {
        const results = await loadResults(opts.pool, c.slug)
        if (!results)
          throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'Not drawn (or not a lottery)')
        cached = { version: v, text: JSON.stringify(results) }
        resultsCache.set(c.slug, cached)
      }
      // Built as one string: a large draw's list would be slow through the schema serializer.
      reply.header('cache-control', 'public, max-age=60').type('application/json; charset=utf-8')
      return reply.send(cached.text)
    },
  )
}
