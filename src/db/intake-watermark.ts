import type { Pool } from './pool.js'

/**
 * The intake watermark (migration 0018, decision 022): the instant before which every registration
 * a gateway received is in PostgreSQL. first_come's places are final only below it.
 */

type Queryable = { query: Pool['query'] }

/** The watermark now (`-infinity` until the recorders first moved it: null). */
export async function readWatermark(q: Queryable): Promise<Date | null> {
  const r = await q.query<{ at: Date | number }>({
    name: 'sabt_read_watermark',
    text: 'SELECT settled_before AS at FROM intake_watermark',
  })
  const at = r.rows[0]?.at
  return at instanceof Date && Number.isFinite(at.getTime()) ? at : null
}

/** The database's clock: what the watermark and the recorders' heartbeats are measured by. */
export async function databaseNow(q: Queryable): Promise<Date> {
  const r = await q.query<{ now: Date }>({ name: 'sabt_db_now', text: 'SELECT clock_timestamp() AS now' })
  return r.rows[0]!.now
}

/**
 * A recorder's heartbeat. `lookedAt` is the database's time read before the recorder counted what
 * it holds (so a heartbeat never claims a later moment than the one it describes).
 */
export async function writeRecorderHold(
  q: Queryable,
  recorder: string,
  held: number,
  oldest: number | null,
  lookedAt: Date,
): Promise<void> {
  await q.query({
    name: 'sabt_write_recorder_hold',
    text: `INSERT INTO recorder_holds (recorder, held, oldest_received_at, written_at)
           VALUES ($1, $2, CASE WHEN $3::float8 IS NULL THEN NULL
                                WHEN $3::float8 = '-infinity' THEN '-infinity'::timestamptz
                                ELSE to_timestamp($3::float8 / 1000) END, $4)
           ON CONFLICT (recorder) DO UPDATE
             SET held = EXCLUDED.held, oldest_received_at = EXCLUDED.oldest_received_at,
                 written_at = GREATEST(recorder_holds.written_at, EXCLUDED.written_at)`,
    values: [recorder, held, oldest === null ? null : oldest === -Infinity ? '-infinity' : oldest, lookedAt],
  })
}

/** A recorder that stopped cleanly holds nothing any more. */
export async function dropRecorderHold(q: Queryable, recorder: string): Promise<void> {
  await q.query('DELETE FROM recorder_holds WHERE recorder = $1', [recorder])
}

export interface RecorderHold {
  recorder: string
  held: number
  /** The oldest held registration's receive time, ms (-Infinity: one it cannot read); null: none. */
  oldest: number | null
  writtenAt: Date
}

/** Forgets the recorders gone: heartbeats not written within `expiryMs`. */
export async function expireRecorderHolds(q: Queryable, expiryMs: number): Promise<void> {
  await q.query({
    name: 'sabt_expire_recorder_holds',
    text: `DELETE FROM recorder_holds WHERE written_at < clock_timestamp() - make_interval(secs => $1::float8 / 1000)`,
    values: [expiryMs],
  })
}

/** The heartbeats of the recorders not forgotten. */
export async function liveRecorderHolds(q: Queryable): Promise<RecorderHold[]> {
  const r = await q.query<{ recorder: string; held: number; oldest: Date | number | null; written_at: Date }>(
    {
      name: 'sabt_live_recorder_holds',
      text: 'SELECT recorder, held, oldest_received_at AS oldest, written_at FROM recorder_holds',
    },
  )
  return r.rows.map((h) => ({
    recorder: h.recorder,
    held: h.held,
    oldest: h.oldest === null ? null : h.oldest instanceof Date ? h.oldest.getTime() : -Infinity,
    writtenAt: h.written_at,
  }))
}

/** Moves the watermark forward to `to` (never back); the watermark after. */
export async function advanceWatermark(q: Queryable, to: Date): Promise<Date | null> {
  const r = await q.query<{ at: Date }>({
    name: 'sabt_advance_watermark',
    text: `UPDATE intake_watermark SET settled_before = GREATEST(settled_before, $1::timestamptz),
             advanced_at = CASE WHEN $1::timestamptz > settled_before THEN now() ELSE advanced_at END
           RETURNING settled_before AS at`,
    values: [to],
  })
  const at = r.rows[0]?.at
  return at instanceof Date && Number.isFinite(at.getTime()) ? at : null
}
