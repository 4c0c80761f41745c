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
import { readWatermark } from './intake-watermark.js'
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
  draw_seconds: number | null
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
 * finds it drawn and changes nothing. Refused while any registration is still unsettled, or
 * while one received before the close may still be outside PostgreSQL (the intake watermark).
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
    // Every 202 received before the close in PostgreSQL (decision 022): one still in an intake
    // queue or the intake dead letters would be left out of the draw for good.
    const watermark = await readWatermark(tx)
    const closedAt = campaign.closesAt ?? scarce.drawAt
    if (watermark === null || watermark.getTime() <= closedAt)
      throw new DrawRefused(
        'not_settled',
        `registrations of ${campaign.slug} received before its close may still be in the intake: the intake watermark is at ${watermark?.toISOString() ?? 'its start'}, the close at ${new Date(closedAt).toISOString()} (wait for the recorders; a registration in the intake dead letters holds it: sabt dead list --intake, fix the cause, sabt dead replay --intake)`,
      )
    // One statement, one snapshot: the participants are exactly the accepted records of the
    // moment nothing was unsettled (a replay finishing between two statements cannot slip in).
    const rows = (
      await tx.query<[string | null, string]>({
        text: `WITH open AS (
                 SELECT (SELECT count(*) FROM registrations WHERE campaign = $1 AND status IN ('recorded', 'verifying'))
                      + (SELECT count(*) FROM waiting WHERE campaign = $1) AS n)
               SELECT r.id::text, open.n::text FROM open
               LEFT JOIN registrations r ON r.campaign = $1 AND r.status = 'accepted' AND open.n = 0`,
        values: [campaign.slug],
        rowMode: 'array',
      })
    ).rows
    const open = Number(rows[0]?.[1] ?? 0)
    if (open > 0)
      throw new DrawRefused('not_settled', `${open} registration(s) of ${campaign.slug} are not settled yet`)
    const ids: string[] = []
    for (const r of rows) if (r[0] !== null) ids.push(r[0])
    const order = rankIds(d.seed, ids)
    for (let off = 0; off < order.length; off += RANK_CHUNK) {
      await tx.query(
        `INSERT INTO allocations (registration_id, campaign, rank, won)
         SELECT t.id, $2, t.n + $3, t.n + $3 <= $4 FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)`,
        [order.slice(off, off + RANK_CHUNK), campaign.slug, off, scarce.capacity],
      )
      await opts.afterChunk?.(Math.min(off + RANK_CHUNK, order.length))
    }
    // Every participant is owed a callback with its allocation (the sweeper sends them).
    if (campaign.callbackUrl)
      await tx.query(
        `UPDATE registrations SET callback_status = 'pending', callback_attempts = 0, callback_last_error = NULL,
           callback_due_at = now() WHERE campaign = $1 AND status = 'accepted'`,
        [campaign.slug],
      )
    const drawn = await tx.query<{ drawn_at: Date }>(
      `UPDATE draws SET drawn_at = now(), drawn_by = $2, capacity = $3, participants = $4, participants_sha256 = $5,
         draw_seconds = $6
       WHERE campaign = $1 RETURNING drawn_at`,
      [
        campaign.slug,
        by,
        scarce.capacity,
        order.length,
        participantsDigest(order),
        (performance.now() - started) / 1000,
      ],
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
    // A waiting entry's position without counting the entries before it (decision 023): ranks run
    // 1…N, the winners are the first min(capacity, participants) of them (the draw), and a place
    // given up goes to the lowest waiting rank (each promotion a release row, all ranked before it).
    const r = await q.query<{ won: boolean; promoted: boolean; released: boolean; position: number | null }>(
      `SELECT a.won, a.promoted_at IS NOT NULL AS promoted, a.released_at IS NOT NULL AS released,
              CASE WHEN NOT a.won AND a.promoted_at IS NULL THEN
                a.rank - (SELECT LEAST(d.capacity, d.participants) FROM draws d WHERE d.campaign = a.campaign)
                       - (SELECT count(*) FROM releases x WHERE x.campaign = a.campaign AND x.promoted_id IS NOT NULL)
              END::int AS position
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
  if (!f) return { state: 'pending' } // not final yet: nothing before it may still change (decision 022)
  if (f.released) return { state: 'released' }
  return f.rank <= scarce.capacity
    ? { state: 'won' }
    : { state: 'waitlisted', position: f.rank - scarce.capacity }
}

/**
 * A record's final first_come place (decision 023): null until the finality sweep numbered it
 * (its place became final: nothing received before it is unsettled or can still arrive, decision
 * 022). Its rank is its number less the released places numbered before it (a winner who released
 * the place no longer stands ahead): one row and the campaign's releases, whatever its size.
 */
export async function firstComePlace(
  q: Queryable,
  campaign: string,
  id: string,
): Promise<{ rank: number; released: boolean } | null> {
  const r = await q.query<{ rank: number | null; released: boolean; released_ahead: number }>({
    name: 'sabt_first_come_place',
    text: `SELECT r.place_rank AS rank,
              EXISTS (SELECT 1 FROM releases x WHERE x.released_id = r.id) AS released,
              (SELECT count(*) FROM releases x JOIN registrations o ON o.id = x.released_id
               WHERE x.campaign = $1 AND o.place_rank < r.place_rank)::int AS released_ahead
       FROM registrations r WHERE r.id = $2 AND r.campaign = $1`,
    values: [campaign, id],
  })
  const row = r.rows[0]
  if (!row || row.rank === null) return null
  return { rank: row.rank - row.released_ahead, released: row.released }
}

/** How many places one finality transaction numbers at most (a campaign upgraded mid-way has many). */
export const FINALITY_BATCH = 5000

/** The statuses of a first_come record that keep every later place from being final. */
const FIRST_COME_OPEN = "('recorded', 'verifying', 'failed')"

/**
 * Below which receive time every first_come place of a campaign is final (decision 022): the
 * intake watermark, or the earliest registration of the campaign still unsettled if that is
 * earlier. Null: nothing is final yet (the recorders have not moved the watermark).
 */
export async function firstComeFrontier(
  q: Queryable,
  campaign: string,
  since: Date | null = null,
): Promise<Date | null> {
  // The earliest unsettled record's own receive time is one probe of the open records' partial
  // index (migration 0019). A duplicate can only bring it earlier if it was received before that,
  // and — the frontier moving only forward — not before the last frontier (since): the
  // duplicates' (campaign, received_at) index over that span, not every unsettled record.
  const r = await q.query<{ frontier: Date | number | null }>({
    name: 'sabt_first_come_frontier',
    text: `WITH open AS (
             SELECT min(received_at) AS at FROM registrations
             WHERE campaign = $1 AND status IN ${FIRST_COME_OPEN}
           )
           SELECT LEAST(
             (SELECT settled_before FROM intake_watermark),
             (SELECT at FROM open),
             (SELECT min(d.received_at) FROM duplicates d JOIN registrations r ON r.id = d.original_id, open
              WHERE d.campaign = $1 AND d.received_at < open.at
                AND ($2::timestamptz IS NULL OR d.received_at >= $2)
                AND r.status IN ${FIRST_COME_OPEN}),
             (SELECT min(received_at) FROM waiting WHERE campaign = $1)) AS frontier`,
    values: [campaign, since],
  })
  const f = r.rows[0]?.frontier
  return f instanceof Date && Number.isFinite(f.getTime()) ? f : null
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
 * A winner gives the place up: the first on the waiting list takes it, recorded with who and
 * when, and — when the campaign has a callback — is owed a callback carrying its new allocation
 * (the sweeper sends it). A lottery: the lowest rank not yet promoted, serialised on the draw's
 * row. first_come: the next accepted registration in arrival order, once every registration of
 * the campaign is settled (so the order is final), serialised on an advisory lock.
 */
export async function releasePlace(
  pool: Pool,
  campaign: Campaign,
  id: string,
  by: string,
): Promise<ReleaseOutcome> {
  const scarce = campaign.scarce
  if (!scarce) throw new DrawRefused('not_lottery', `campaign ${campaign.slug} has no capacity`)
  return inTransaction(pool, async (tx: Tx) => {
    if (scarce.allocation === 'first_come') {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sabt-release:${campaign.slug}`])
      const prior = await priorRelease(tx, id)
      if (prior) return prior
      return releaseFirstCome(tx, campaign, scarce.capacity, id, by)
    }
    const d = (await tx.query<DrawRow>('SELECT * FROM draws WHERE campaign = $1 FOR UPDATE', [campaign.slug]))
      .rows[0]
    if (!d || d.drawn_at === null)
      throw new DrawRefused('not_committed', `campaign ${campaign.slug} is not drawn`)
    const prior = await priorRelease(tx, id)
    if (prior) return prior
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
    return recordRelease(tx, campaign, id, promoted, by)
  })
}

async function priorRelease(tx: Tx, id: string): Promise<ReleaseOutcome | null> {
  const prior = await tx.query<{ promoted: string | null; released_by: string; released_at: Date }>(
    'SELECT promoted_id::text AS promoted, released_by, released_at FROM releases WHERE released_id = $1',
    [id],
  )
  const p = prior.rows[0]
  return p
    ? {
        released: id,
        promoted: p.promoted,
        releasedBy: p.released_by,
        releasedAt: p.released_at,
        changed: false,
      }
    : null
}

async function releaseFirstCome(
  tx: Tx,
  campaign: Campaign,
  capacity: number,
  id: string,
  by: string,
): Promise<ReleaseOutcome> {
  // The holders of a place, then the first on the waiting list, in first_come order — all of
  // them final (decision 022): numbered by the finality sweep (decision 023), read in number order.
  const first = await tx.query<{ id: string }>(
    `SELECT r.id::text FROM registrations r
     WHERE r.campaign = $1 AND r.place_rank IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM releases x WHERE x.released_id = r.id)
     ORDER BY r.place_rank
     LIMIT $2`,
    [campaign.slug, capacity + 1],
  )
  if (first.rows.length < capacity + 1) {
    // Fewer numbered than the places and the first on the waiting list: one still unnumbered
    // (being checked, failed, waiting, or accepted and not final yet) may be one of them.
    const more = await tx.query<{ more: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM registrations WHERE campaign = $1 AND place_rank IS NULL
                        AND status IN ('accepted', 'recorded', 'verifying', 'failed'))
           OR EXISTS (SELECT 1 FROM waiting WHERE campaign = $1) AS more`,
      [campaign.slug],
    )
    if (more.rows[0]?.more)
      throw new DrawRefused(
        'not_settled',
        `the places of ${campaign.slug} are not final yet: registrations received before the last of them may still be unsettled or in the intake`,
      )
  }
  const i = first.rows.findIndex((r) => r.id === id)
  if (i < 0 || i >= capacity)
    throw new DrawRefused('not_a_winner', `${id} does not hold a place in ${campaign.slug}`)
  return recordRelease(tx, campaign, id, first.rows[capacity]?.id ?? null, by)
}

async function recordRelease(
  tx: Tx,
  campaign: Campaign,
  id: string,
  promoted: string | null,
  by: string,
): Promise<ReleaseOutcome> {
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
  // first_come: the winners so far are the first `capacity` accepted that kept their place
  // (final once all before them are settled).
  const rel = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM releases WHERE campaign = $1', [
    campaign.slug,
  ])
  const released = rel.rows[0]!.n
  const holding = accepted - released
  const winners = Math.min(holding, capacity)
  return { accepted, unsettled: open, winners, waitlisted: holding - winners, released }
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

/**
 * first_come records whose place became final below `frontier` (decision 022) are numbered, in
 * place order after the last number given (decision 023: `place_rank`, what every later answer
 * about the place reads), and each not told yet is marked told, owed its callback (when the
 * campaign has one: the callback carries the place) and — where citizens are sent SMS — an
 * allocation message, unless its verdict message told the place already. Only what was received
 * at or after the last numbered place is looked at — records and duplicates (a record's place is
 * its earliest submission's): everything below a frontier was settled when it passed, and a
 * failed record (the one kind a replay brings back) held the frontier at it. `batch` at most in
 * one transaction, the earliest first, until none is left. The ids owed.
 */
export async function markFirstComeFinal(
  pool: Pool,
  campaign: Campaign,
  frontier: Date,
  batch = FINALITY_BATCH,
): Promise<string[]> {
  const owed: string[] = []
  for (;;) {
    const { numbered, ids } = await numberFinalPlaces(pool, campaign, frontier, batch)
    owed.push(...ids)
    if (numbered < batch) return owed
  }
}

/** One transaction of markFirstComeFinal: the `limit` earliest places not numbered yet. */
async function numberFinalPlaces(
  pool: Pool,
  campaign: Campaign,
  frontier: Date,
  limit: number,
): Promise<{ numbered: number; ids: string[] }> {
  return inTransaction(pool, async (tx) => {
    // One numbering at a time per campaign (two checkers' sweeps, a lease that ran out).
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sabt-rank:${campaign.slug}`])
    // Every record still unnumbered below the frontier comes after the last one numbered: its
    // place time bounds where to look (the accepted records' partial index, the duplicates').
    const last = await tx.query<{ rank: number; at: Date }>(
      `SELECT r.place_rank AS rank,
              LEAST(r.received_at, (SELECT min(d.received_at) FROM duplicates d WHERE d.original_id = r.id)) AS at
       FROM registrations r WHERE r.campaign = $1 AND r.place_rank IS NOT NULL
       ORDER BY r.place_rank DESC LIMIT 1`,
      [campaign.slug],
    )
    const since = last.rows[0]?.at ?? null
    // The `limit`-th receive time among them: the `limit` earliest places are all at or before it
    // (a place is never later than its record's receive time), so only records and duplicates
    // received by then need ranking — one batch's worth, not everything still to number.
    const upto = await tx.query<{ at: Date }>(
      `SELECT received_at AS at FROM registrations
       WHERE campaign = $1 AND status = 'accepted' AND place_rank IS NULL AND received_at < $2
         AND ($3::timestamptz IS NULL OR received_at >= $3)
       ORDER BY received_at OFFSET $4 LIMIT 1`,
      [campaign.slug, frontier, since, limit - 1],
    )
    const marked = await tx.query<{ id: string; owed: boolean }>(
      `WITH cand AS (
         SELECT id FROM registrations
         WHERE campaign = $1 AND status = 'accepted' AND place_rank IS NULL AND received_at < $2
           AND ($3::timestamptz IS NULL OR received_at >= $3) AND ($7::timestamptz IS NULL OR received_at <= $7)
         UNION
         SELECT d.original_id FROM duplicates d
         WHERE d.campaign = $1 AND d.received_at < $2 AND ($3::timestamptz IS NULL OR d.received_at >= $3)
           AND ($7::timestamptz IS NULL OR d.received_at <= $7)
       ), keyed AS (
         -- Told already: a place made final and told before migration 0019 numbered it.
         SELECT r.id, r.allocation_told_at IS NULL AS owed,
                LEAST(r.received_at, (SELECT min(d.received_at) FROM duplicates d WHERE d.original_id = r.id)) AS at
         FROM cand JOIN registrations r ON r.id = cand.id
         WHERE r.status = 'accepted' AND r.place_rank IS NULL
       ), ranked AS (
         SELECT id, owed, $5::int + row_number() OVER (ORDER BY at, id) AS rank FROM keyed WHERE at < $2
         ORDER BY at, id LIMIT $6
       )
       UPDATE registrations r SET place_rank = ranked.rank,
         allocation_told_at = CASE WHEN ranked.owed THEN now() ELSE r.allocation_told_at END,
         callback_status = CASE WHEN $4 AND ranked.owed THEN 'pending' ELSE r.callback_status END,
         callback_attempts = CASE WHEN $4 AND ranked.owed THEN 0 ELSE r.callback_attempts END,
         callback_last_error = CASE WHEN $4 AND ranked.owed THEN NULL ELSE r.callback_last_error END,
         callback_due_at = CASE WHEN $4 AND ranked.owed THEN now() ELSE r.callback_due_at END
       FROM ranked WHERE r.id = ranked.id
       RETURNING r.id::text, ranked.owed`,
      [
        campaign.slug,
        frontier,
        since,
        campaign.callbackUrl !== null,
        last.rows[0]?.rank ?? 0,
        limit,
        upto.rows[0]?.at ?? null,
      ],
    )
    const ids = marked.rows.filter((r) => r.owed).map((r) => r.id)
    if (ids.length > 0)
      await tx.query(
        `INSERT INTO citizen_messages (registration_id, kind, campaign)
         SELECT m.id, 'allocation', $1 FROM unnest($2::uuid[]) AS m(id)
         WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.slug = $1 AND c.citizen_sms)
           AND NOT EXISTS (SELECT 1 FROM citizen_messages v
                           WHERE v.registration_id = m.id AND v.kind = 'verdict' AND v.told IS NOT NULL)
         ON CONFLICT DO NOTHING`,
        [campaign.slug, ids],
      )
    return { numbered: marked.rows.length, ids }
  })
}
