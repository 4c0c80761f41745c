import { randomBytes } from 'node:crypto'
import type { Campaign } from '../config/campaigns.js'
import {
  commitmentOf,
  type DrawResults,
  participantsDigest,
  RANKING_RULE,
  RESULTS_FORMAT,
  rankIds,
} from '../domain/draw.js'
import type { Pool } from './pool.js'
import { inTransaction, type Tx } from './transaction.js'

/**
 * Scarce campaigns (decision 019): a lottery's commitment, draw and releases; the allocation of a
 * registration under either rule. The ranking itself is pure (src/domain/draw.ts).
 */

type Queryable = { query: Pool['query'] }

export interface DrawRow {
  campaign: string
  seed: Buffer
  commitment: string
  committed_at: Date
  committed_by: string
  drawn_at: Date | null
  drawn_by: string | null
  capacity: number | null
  participants: number | null
  participants_sha256: string | null
}

export type DrawState = 'not_committed' | 'committed' | 'revealed'

export function drawState(d: DrawRow | null): DrawState {
  return d === null ? 'not_committed' : d.drawn_at === null ? 'committed' : 'revealed'
}

export async function findDraw(q: Queryable, campaign: string): Promise<DrawRow | null> {
  const r = await q.query<DrawRow>('SELECT * FROM draws WHERE campaign = $1', [campaign])
  return r.rows[0] ?? null
}

/** Fixes the seed once: a second commit returns the first commitment (`created: false`). */
export async function commitDraw(
  pool: Pool,
  campaign: string,
  by: string,
): Promise<{ commitment: string; committedAt: Date; created: boolean }> {
  const seed = randomBytes(32)
  const ins = await pool.query<{ commitment: string; committed_at: Date }>(
    `INSERT INTO draws (campaign, seed, commitment, committed_by) VALUES ($1, $2, $3, $4)
     ON CONFLICT (campaign) DO NOTHING RETURNING commitment, committed_at`,
    [campaign, seed, commitmentOf(seed), by],
  )
  if (ins.rows[0])
    return { commitment: ins.rows[0].commitment, committedAt: ins.rows[0].committed_at, created: true }
  const d = (await findDraw(pool, campaign))!
  return { commitment: d.commitment, committedAt: d.committed_at, created: false }
}

/** Registrations of the campaign not settled yet: records being checked, submissions waiting. */
export async function unsettled(q: Queryable, campaign: string): Promise<number> {
  const r = await q.query<{ n: number }>(
    `SELECT (SELECT count(*) FROM registrations WHERE campaign = $1 AND status IN ('recorded', 'verifying'))::int
          + (SELECT count(*) FROM waiting WHERE campaign = $1)::int AS n`,
    [campaign],
  )
  return r.rows[0]!.n
}

/** Why a draw did not run: the caller must wait (not yet) or act (not committed). */
export class DrawRefused extends Error {
  constructor(
    readonly reason:
      | 'not_committed'
      | 'not_settled'
      | 'not_due'
      | 'not_lottery'
      | 'not_found'
      | 'not_a_winner',
    message: string,
  ) {
    super(message)
  }
}

export interface DrawSummary {
  campaign: string
  /** false: it had run already — nothing was changed. */
  ran: boolean
  participants: number
  winners: number
  waitlisted: number
  drawnAt: Date
  seconds: number
}

/** Ids written per INSERT … unnest while the draw stores its ranks. */
const RANK_CHUNK = 50_000

/**
 * The draw, in ONE transaction with the draw's row locked: every accepted registration ranked by
 * HMAC-SHA256(seed, id), every rank written, the seed revealed (drawn_at) — a crash anywhere
 * leaves it committed and undrawn, and a second run (or a concurrent one, waiting on the lock)
 * finds it drawn and changes nothing. Refused while any registration is still unsettled.
 * `afterChunk` is for tests: a failure injected between two writes of ranks.
 */
export async function drawLottery(
  pool: Pool,
  campaign: Campaign,
  by: string,
  opts: { now?: number; afterChunk?: (written: number) => Promise<void> | void } = {},
): Promise<DrawSummary> {
  const scarce = campaign.scarce
  if (scarce?.allocation !== 'lottery')
    throw new DrawRefused('not_lottery', `campaign ${campaign.slug} is not a lottery`)
  const started = performance.now()
  return inTransaction(pool, async (tx) => {
    const d = (await tx.query<DrawRow>('SELECT * FROM draws WHERE campaign = $1 FOR UPDATE', [campaign.slug]))
      .rows[0]
    if (!d)
      throw new DrawRefused(
        'not_committed',
        `campaign ${campaign.slug} has no committed seed (sabt draw commit)`,
      )
    if (d.drawn_at !== null) {
      const n = d.participants ?? 0
      const w = Math.min(n, d.capacity ?? 0)
      return {
        campaign: campaign.slug,
        ran: false,
        participants: n,
        winners: w,
        waitlisted: n - w,
        drawnAt: d.drawn_at,
        seconds: 0,
      }
    }
    const now = opts.now ?? Date.now()
    if (now < scarce.drawAt)
      throw new DrawRefused(
        'not_due',
        `the draw of ${campaign.slug} is at ${new Date(scarce.drawAt).toISOString()}`,
      )
    const open = await unsettled(tx, campaign.slug)
    if (open > 0)
      throw new DrawRefused('not_settled', `${open} registration(s) of ${campaign.slug} are not settled yet`)

    const ids = (
      await tx.query<string[]>({
        text: `SELECT id::text FROM registrations WHERE campaign = $1 AND status = 'accepted'`,
        values: [campaign.slug],
        rowMode: 'array',
      })
    ).rows.map((r) => r[0]!)
    const order = rankIds(d.seed, ids)
    for (let off = 0; off < order.length; off += RANK_CHUNK) {
      await tx.query(
        `INSERT INTO allocations (registration_id, campaign, rank, won)
         SELECT t.id, $2, t.n + $3, t.n + $3 <= $4 FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)`,
        [order.slice(off, off + RANK_CHUNK), campaign.slug, off, scarce.capacity],
      )
      await opts.afterChunk?.(Math.min(off + RANK_CHUNK, order.length))
    }
    const drawn = await tx.query<{ drawn_at: Date }>(
      `UPDATE draws SET drawn_at = now(), drawn_by = $2, capacity = $3, participants = $4, participants_sha256 = $5
       WHERE campaign = $1 RETURNING drawn_at`,
      [campaign.slug, by, scarce.capacity, order.length, participantsDigest(order)],
    )
    const winners = Math.min(order.length, scarce.capacity)
    return {
      campaign: campaign.slug,
      ran: true,
      participants: order.length,
      winners,
      waitlisted: order.length - winners,
      drawnAt: drawn.rows[0]!.drawn_at,
      seconds: (performance.now() - started) / 1000,
    }
  })
}

/** The published results of a drawn lottery (no personal data: ids, ranks, outcomes); null before. */
export async function loadResults(q: Queryable, campaign: string): Promise<DrawResults | null> {
  const d = await findDraw(q, campaign)
  if (!d || d.drawn_at === null) return null
  const rows = await q.query<[string, number, boolean]>({
    text: 'SELECT registration_id::text, rank, won FROM allocations WHERE campaign = $1 ORDER BY rank',
    values: [campaign],
    rowMode: 'array',
  })
  const rel = await q.query<{ released: string; promoted: string | null; at: Date }>(
    `SELECT released_id::text AS released, promoted_id::text AS promoted, released_at AS at
     FROM releases WHERE campaign = $1 ORDER BY id`,
    [campaign],
  )
  return {
    format: RESULTS_FORMAT,
    campaign,
    capacity: d.capacity!,
    commitment: d.commitment,
    seed: d.seed.toString('hex'),
    drawn_at: d.drawn_at.toISOString(),
    participants_sha256: d.participants_sha256!,
    ranking: RANKING_RULE,
    participants: rows.rows.map(([id, rank, won]) => ({ id, rank, result: won ? 'won' : 'waitlisted' })),
    releases: rel.rows.map((r) => ({ released: r.released, promoted: r.promoted, at: r.at.toISOString() })),
  }
}

/** Where a registration stands in a scarce campaign (null: not scarce, or rejected / failed). */
export type Allocation =
  | { state: 'won' }
  | { state: 'waitlisted'; position: number }
  | { state: 'released' }
  | { state: 'not_drawn' }
  | { state: 'pending' }

export async function allocationOf(
  q: Queryable,
  campaign: Campaign | undefined,
  record: { id: string; status: string },
): Promise<Allocation | null> {
  const scarce = campaign?.scarce
  if (!scarce) return null
  if (record.status === 'recorded' || record.status === 'verifying') return { state: 'pending' }
  if (record.status !== 'accepted') return null
  if (scarce.allocation === 'lottery') {
    const r = await q.query<{ won: boolean; promoted: boolean; released: boolean; position: number | null }>(
      `SELECT a.won, a.promoted_at IS NOT NULL AS promoted, a.released_at IS NOT NULL AS released,
              CASE WHEN NOT a.won AND a.promoted_at IS NULL THEN
                (SELECT count(*)::int FROM allocations w WHERE w.campaign = a.campaign AND w.rank <= a.rank
                   AND NOT w.won AND w.promoted_at IS NULL) END AS position
       FROM allocations a WHERE a.registration_id = $1`,
      [record.id],
    )
    const a = r.rows[0]
    if (!a) return { state: 'not_drawn' }
    if (a.released) return { state: 'released' }
    if (a.won || a.promoted) return { state: 'won' }
    return { state: 'waitlisted', position: a.position! }
  }
  const f = await firstComePlace(q, campaign.slug, record.id)
  if (f.unsettledBefore > 0) return { state: 'pending' }
  return f.rank <= scarce.capacity
    ? { state: 'won' }
    : { state: 'waitlisted', position: f.rank - scarce.capacity }
}

/**
 * A record's place under first_come: the gateway's receive time of the person's earliest
 * submission (the record's own, or a later-committed duplicate's), ties by id; how many accepted
 * registrations stand before it, and how many earlier ones are still unsettled.
 */
export async function firstComePlace(
  q: Queryable,
  campaign: string,
  id: string,
): Promise<{ rank: number; unsettledBefore: number }> {
  const r = await q.query<{ ahead: number; unsettled: number }>(
    `WITH placed AS (
       SELECT r.id, r.status,
              LEAST(r.received_at, (SELECT min(d.received_at) FROM duplicates d WHERE d.original_id = r.id)) AS at
       FROM registrations r WHERE r.campaign = $1 AND r.status IN ('accepted', 'recorded', 'verifying')
     ), me AS (SELECT at, id FROM placed WHERE id = $2)
     SELECT (SELECT count(*) FROM placed p, me WHERE p.status = 'accepted' AND (p.at, p.id) < (me.at, me.id))::int AS ahead,
            ((SELECT count(*) FROM placed p, me WHERE p.status <> 'accepted' AND p.at < me.at)
             + (SELECT count(*) FROM waiting w, me WHERE w.campaign = $1 AND w.received_at < me.at))::int AS unsettled`,
    [campaign, id],
  )
  const row = r.rows[0]
  return { rank: (row?.ahead ?? 0) + 1, unsettledBefore: row?.unsettled ?? 0 }
}

export interface ReleaseOutcome {
  released: string
  promoted: string | null
  releasedBy: string
  releasedAt: Date
  /** false: this winner had given the place up already — nothing was changed. */
  changed: boolean
}

/**
 * A winner gives the place up: the first on the waiting list (lowest rank not yet promoted) takes
 * it, recorded with who and when, and — when the campaign has a callback — is owed a callback
 * carrying its new allocation (the sweeper sends it). Serialised on the draw's row.
 */
export async function releasePlace(
  pool: Pool,
  campaign: Campaign,
  id: string,
  by: string,
): Promise<ReleaseOutcome> {
  return inTransaction(pool, async (tx: Tx) => {
    const d = (await tx.query<DrawRow>('SELECT * FROM draws WHERE campaign = $1 FOR UPDATE', [campaign.slug]))
      .rows[0]
    if (!d || d.drawn_at === null)
      throw new DrawRefused('not_committed', `campaign ${campaign.slug} is not drawn`)
    const prior = await tx.query<{ promoted: string | null; released_by: string; released_at: Date }>(
      'SELECT promoted_id::text AS promoted, released_by, released_at FROM releases WHERE released_id = $1',
      [id],
    )
    if (prior.rows[0])
      return {
        released: id,
        promoted: prior.rows[0].promoted,
        releasedBy: prior.rows[0].released_by,
        releasedAt: prior.rows[0].released_at,
        changed: false,
      }
    const upd = await tx.query(
      `UPDATE allocations SET released_at = now()
       WHERE registration_id = $1 AND campaign = $2 AND (won OR promoted_at IS NOT NULL) AND released_at IS NULL`,
      [id, campaign.slug],
    )
    if (upd.rowCount !== 1)
      throw new DrawRefused('not_a_winner', `${id} does not hold a place in ${campaign.slug}`)
    const next = await tx.query<{ id: string }>(
      `UPDATE allocations SET promoted_at = now() WHERE registration_id = (
         SELECT registration_id FROM allocations WHERE campaign = $1 AND NOT won AND promoted_at IS NULL
         ORDER BY rank LIMIT 1)
       RETURNING registration_id::text AS id`,
      [campaign.slug],
    )
    const promoted = next.rows[0]?.id ?? null
    const rel = await tx.query<{ released_at: Date }>(
      `INSERT INTO releases (campaign, released_id, promoted_id, released_by) VALUES ($1, $2, $3, $4)
       RETURNING released_at`,
      [campaign.slug, id, promoted, by],
    )
    if (promoted && campaign.callbackUrl)
      await tx.query(
        `UPDATE registrations SET callback_status = 'pending', callback_attempts = 0, callback_last_error = NULL,
           callback_due_at = now() WHERE id = $1`,
        [promoted],
      )
    return { released: id, promoted, releasedBy: by, releasedAt: rel.rows[0]!.released_at, changed: true }
  })
}

export interface CampaignCounts {
  accepted: number
  unsettled: number
  winners: number
  waitlisted: number
  released: number
}

/** Counts for the public campaign page, the dashboard and the metrics. */
export async function campaignCounts(q: Queryable, campaign: Campaign): Promise<CampaignCounts> {
  const r = await q.query<{ accepted: number; unsettled: number }>(
    `SELECT count(*) FILTER (WHERE status = 'accepted')::int AS accepted,
            (count(*) FILTER (WHERE status IN ('recorded', 'verifying'))
             + (SELECT count(*) FROM waiting WHERE campaign = $1))::int AS unsettled
     FROM registrations WHERE campaign = $1`,
    [campaign.slug],
  )
  const { accepted, unsettled: open } = r.rows[0]!
  const capacity = campaign.scarce?.capacity ?? 0
  if (campaign.scarce?.allocation === 'lottery') {
    const a = await q.query<{ winners: number; waitlisted: number; released: number }>(
      `SELECT count(*) FILTER (WHERE (won OR promoted_at IS NOT NULL) AND released_at IS NULL)::int AS winners,
              count(*) FILTER (WHERE NOT won AND promoted_at IS NULL)::int AS waitlisted,
              count(*) FILTER (WHERE released_at IS NOT NULL)::int AS released
       FROM allocations WHERE campaign = $1`,
      [campaign.slug],
    )
    return { accepted, unsettled: open, ...a.rows[0]! }
  }
  // first_come: the winners so far are the first `capacity` accepted (final once all before are settled).
  const winners = Math.min(accepted, capacity)
  return { accepted, unsettled: open, winners, waitlisted: accepted - winners, released: 0 }
}

export async function releaseHistory(
  q: Queryable,
  campaign: string,
  limit = 50,
): Promise<{ released: string; promoted: string | null; by: string; at: Date }[]> {
  const r = await q.query<{ released: string; promoted: string | null; by: string; at: Date }>(
    `SELECT released_id::text AS released, promoted_id::text AS promoted, released_by AS by, released_at AS at
     FROM releases WHERE campaign = $1 ORDER BY id DESC LIMIT $2`,
    [campaign, limit],
  )
  return r.rows
}
