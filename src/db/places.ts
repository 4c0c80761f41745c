import type { Pool } from './pool.js'

/**
 * A person's place in a campaign (decision 015): (campaign, blind index of the national id), held
 * by at most one record at a time — `holds_place`, under a partial unique index, so the recorder's
 * one batch INSERT … ON CONFLICT still carries the rule. The record holding it is being checked or
 * accepted; submissions arriving meanwhile wait beside it (`waiting`, sealed like a record). When
 * the holder ends rejected or failed it gives the place up: to the earliest waiting submission,
 * which becomes a record and is checked, or to the next one to arrive — unless the person has used
 * the campaign's max_records_per_person, in which case the last record keeps the place and every
 * later submission is a plain duplicate.
 *
 * Everything that changes a place runs with the holder's row locked: the checker's verdict writes
 * lock the records they settle (FOR UPDATE), the recorder locks a holder before it admits a
 * submission beside it (FOR NO KEY UPDATE), both in id order.
 */

type Queryable = { query: Pool['query'] }

/** A record that took its place from `promotedFrom`: its first checks are to be asked. */
export interface Promoted {
  id: string
  campaign: string
  promotedFrom: string
}

/**
 * Each settled record's place (if it holds one), how many records its person has in the campaign,
 * the first waiting for the place, and the records promoted from it that have not started. Every
 * sub-select is one probe of a two-column index (migration 0020), whatever the statistics say.
 */
export const PLACES_OF_SETTLED = `SELECT r.id::text, r.campaign, r.national_id_index AS nidx, r.status, r.holds_place,
         CASE WHEN r.holds_place AND r.status <> 'accepted' THEN
           (SELECT count(*)::int FROM registrations x
            WHERE x.campaign = r.campaign AND x.national_id_index = r.national_id_index) END AS records,
         CASE WHEN r.holds_place THEN
           (SELECT w.id::text FROM waiting w
            WHERE w.campaign = r.campaign AND w.national_id_index = r.national_id_index
            ORDER BY w.id LIMIT 1) END AS first_waiting,
         CASE WHEN NOT r.holds_place AND r.status <> 'accepted' THEN
           (SELECT array_agg(p.id::text) FROM registrations p
            WHERE p.promoted_from = r.id AND p.status = 'recorded') END AS unstarted
  FROM registrations r
  WHERE r.id = ANY($1::uuid[]) AND r.national_id_index IS NOT NULL`

/**
 * After records' statuses were written, in the same transaction, with their rows locked: an
 * accepted holder turns the submissions waiting beside it into duplicates (their personal data is
 * dropped); a rejected or failed holder gives its place to the earliest waiting one, or frees it
 * (or keeps it, once the person reached the campaign's cap). Idempotent: a redelivered answer
 * changes nothing again, and still returns the records promoted from its record that have not
 * started their checks — so a crash between this commit and the publish of those checks is
 * repaired by the redelivery.
 */
export async function settlePlaces(
  client: Queryable,
  records: readonly { id: string; status: string; maxRecordsPerPerson: number }[],
): Promise<Promoted[]> {
  // Records whose status is final or failed, with their campaign's cap.
  const capOf = new Map<string, number>()
  for (const r of records)
    if (r.status === 'accepted' || r.status === 'rejected' || r.status === 'failed')
      capOf.set(r.id, r.maxRecordsPerPerson)
  if (capOf.size === 0) return []

  // One read for the whole batch: each record's place (if it holds one) and the records already
  // promoted from it that have not started their checks (a redelivery after a crash).
  const places = await client.query<{
    id: string
    campaign: string
    nidx: Buffer | null
    status: string
    holds_place: boolean
    records: number | null
    first_waiting: string | null
    unstarted: string[] | null
  }>({
    name: 'sabt_places_of_settled',
    text: PLACES_OF_SETTLED,
    values: [[...capOf.keys()]],
  })

  const release: string[] = []
  const promote: { id: string; from: string }[] = []
  const accepted: { campaign: string; nidx: Buffer; original: string }[] = []
  const promoted: Promoted[] = []
  for (const h of places.rows) {
    for (const id of h.unstarted ?? []) promoted.push({ id, campaign: h.campaign, promotedFrom: h.id })
    if (!h.holds_place || h.nidx === null) continue
    if (h.status === 'accepted') {
      if (h.first_waiting) accepted.push({ campaign: h.campaign, nidx: h.nidx, original: h.id })
    } else if (h.status === 'rejected' || h.status === 'failed') {
      if (h.first_waiting) {
        // Admitted beside it under the cap already: it takes the place whatever the count.
        release.push(h.id)
        promote.push({ id: h.first_waiting, from: h.id })
        promoted.push({ id: h.first_waiting, campaign: h.campaign, promotedFrom: h.id })
      } else if ((h.records ?? 0) < capOf.get(h.id)!) release.push(h.id)
      // else: the person's last record under the cap keeps the place.
    }
  }

  if (release.length > 0)
    await client.query({
      name: 'sabt_places_release',
      text: 'UPDATE registrations SET holds_place = false WHERE id = ANY($1::uuid[])',
      values: [release],
    })
  if (promote.length > 0)
    // After the release (an earlier statement): the unique index sees the place free.
    await client.query({
      name: 'sabt_places_promote',
      text: `WITH p AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS p(id, from_id)),
                  w AS (DELETE FROM waiting USING p WHERE waiting.id = p.id
                        RETURNING waiting.*, p.from_id)
             INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                                        first_name, last_name, birth_date, attributes, received_at, recorded_at,
                                        status, promoted_from)
             SELECT id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                    first_name, last_name, birth_date, attributes, received_at, recorded_at, 'recorded', from_id
             FROM w`,
      values: [promote.map((p) => p.id), promote.map((p) => p.from)],
    })
  if (accepted.length > 0)
    await client.query({
      name: 'sabt_places_waiting_to_duplicates',
      text: `WITH p AS (SELECT * FROM unnest($1::text[], $2::bytea[], $3::uuid[]) AS p(campaign, nidx, original_id)),
                  w AS (DELETE FROM waiting USING p
                        WHERE waiting.campaign = p.campaign AND waiting.national_id_index = p.nidx
                        RETURNING waiting.id, p.original_id, waiting.campaign, waiting.received_at, waiting.recorded_at)
             INSERT INTO duplicates (id, original_id, campaign, received_at, recorded_at)
             SELECT id, original_id, campaign, received_at, recorded_at FROM w
             ON CONFLICT (id) DO NOTHING`,
      values: [accepted.map((a) => a.campaign), accepted.map((a) => a.nidx), accepted.map((a) => a.original)],
    })
  return promoted
}

/**
 * Before a failed record is replayed: it asks again only if it still holds its place, or can take
 * it back (nobody took it meanwhile). False: another record of the person holds it now — the
 * replay would spend quota on a submission that can no longer become the person's record.
 * Runs inside the replay's transaction, with the record locked.
 */
export async function reclaimPlace(client: Queryable, id: string): Promise<boolean> {
  const r = await client.query<{ holds_place: boolean; campaign: string; nidx: Buffer | null }>(
    'SELECT holds_place, campaign, national_id_index AS nidx FROM registrations WHERE id = $1',
    [id],
  )
  const row = r.rows[0]
  if (!row) return false
  if (row.holds_place || row.nidx === null) return true // erased: no place to speak of
  await client.query('SAVEPOINT sabt_reclaim_place')
  try {
    const u = await client.query(
      `UPDATE registrations SET holds_place = true WHERE id = $1 AND NOT EXISTS (
         SELECT 1 FROM registrations h WHERE h.campaign = $2 AND h.national_id_index = $3 AND h.holds_place)`,
      [id, row.campaign, row.nidx],
    )
    await client.query('RELEASE SAVEPOINT sabt_reclaim_place')
    return u.rowCount === 1
  } catch (err) {
    // A submission took the place in the same instant (the unique index says so).
    if ((err as { code?: string }).code !== '23505') throw err
    await client.query('ROLLBACK TO SAVEPOINT sabt_reclaim_place')
    return false
  }
}

export interface WaitingView {
  id: string
  campaign: string
  received_at: Date
  recorded_at: Date
}

export async function findWaiting(pool: Pool, id: string): Promise<WaitingView | null> {
  const r = await pool.query<WaitingView>({
    name: 'sabt_find_waiting',
    text: 'SELECT id::text, campaign, received_at, recorded_at FROM waiting WHERE id = $1',
    values: [id],
  })
  return r.rows[0] ?? null
}

/** The record holding the place a waiting submission waits for (for operators). */
export async function findPlaceHolder(pool: Pool, waitingId: string): Promise<string | null> {
  const r = await pool.query<{ id: string }>({
    name: 'sabt_find_place_holder',
    text: `SELECT r.id::text FROM waiting w
           JOIN registrations r ON r.campaign = w.campaign AND r.national_id_index = w.national_id_index AND r.holds_place
           WHERE w.id = $1`,
    values: [waitingId],
  })
  return r.rows[0]?.id ?? null
}
