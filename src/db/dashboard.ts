import type { Pool } from './pool.js'

/** Registrations by campaign and status, and duplicates by campaign: the dashboard's counts. */
export interface StatusCounts {
  at: string
  /**
   * campaign → status → count; `duplicate` counts the later submissions kept as duplicates,
   * `waiting` those kept beside a record still being checked (decision 015).
   */
  byCampaign: Record<string, Record<string, number>>
  total: Record<string, number>
}

export async function countByStatus(pool: Pool): Promise<StatusCounts> {
  const r = await pool.query<{ campaign: string; status: string; n: number }>({
    name: 'sabt_dashboard_counts',
    text: `SELECT campaign, status, count(*)::int AS n FROM registrations GROUP BY 1, 2
           UNION ALL
           SELECT campaign, 'duplicate', count(*)::int FROM duplicates GROUP BY 1
           UNION ALL
           SELECT campaign, 'waiting', count(*)::int FROM waiting GROUP BY 1`,
  })
  const byCampaign: Record<string, Record<string, number>> = {}
  const total: Record<string, number> = {}
  for (const row of r.rows) {
    byCampaign[row.campaign] ??= {}
    byCampaign[row.campaign]![row.status] = row.n
    total[row.status] = (total[row.status] ?? 0) + row.n
  }
  return { at: new Date().toISOString(), byCampaign, total }
}

/** Why checks said no, per campaign: each (check, reason code), all time and in the last hour. */
export interface ReasonCount {
  campaign: string
  check: string
  reason: string
  total: number
  last_hour: number
}

export async function countRejectionReasons(pool: Pool): Promise<ReasonCount[]> {
  const r = await pool.query<ReasonCount>({
    name: 'sabt_dashboard_reasons',
    text: `SELECT r.campaign, c.check_name AS check, coalesce(c.reason_code, 'unspecified') AS reason,
                  count(*)::int AS total,
                  (count(*) FILTER (WHERE c.finished_at > now() - interval '1 hour'))::int AS last_hour
           FROM check_results c JOIN registrations r ON r.id = c.registration_id
           WHERE c.outcome = 'failed'
           GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC, 2, 3`,
  })
  return r.rows
}

/** A record with what an operator may see of the person (sealed fields still sealed). */
export interface RecordDetail {
  id: string
  campaign: string
  status: string
  first_name: string | null
  last_name: string | null
  birth_date: string | null
  national_id_sealed: Buffer | null
  mobile_sealed: Buffer | null
  key_id: string
  received_at: Date
  recorded_at: Date
  verdict_at: Date | null
  erased_at: Date | null
  duplicates: number
  /** Whether it holds the person's place in the campaign (decision 015). */
  holds_place: boolean
  /** The record whose place it took, if it was promoted from the waiting submissions. */
  promoted_from: string | null
}

const DETAIL = `SELECT r.id::text, r.campaign, r.status, r.first_name, r.last_name,
       to_char(r.birth_date, 'YYYY-MM-DD') AS birth_date, r.national_id_sealed, r.mobile_sealed, r.key_id,
       r.received_at, r.recorded_at, r.verdict_at, r.erased_at, r.holds_place, r.promoted_from::text,
       (SELECT count(*)::int FROM duplicates d WHERE d.original_id = r.id) AS duplicates
FROM registrations r`

export async function findRecordDetail(pool: Pool, id: string): Promise<RecordDetail | null> {
  const r = await pool.query<RecordDetail>({
    name: 'sabt_dashboard_record',
    text: `${DETAIL} WHERE r.id = $1`,
    values: [id],
  })
  return r.rows[0] ?? null
}

/** Every record of one person (in each campaign, the one holding the place and any it replaced), by the blind index of their national id. */
export async function findRecordsByNationalIdIndex(
  pool: Pool,
  index: Buffer,
  limit = 50,
): Promise<RecordDetail[]> {
  const r = await pool.query<RecordDetail>({
    name: 'sabt_dashboard_by_national_id',
    text: `${DETAIL} WHERE r.national_id_index = $1 ORDER BY r.id LIMIT $2`,
    values: [index, limit],
  })
  return r.rows
}
