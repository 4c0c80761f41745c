import type { Pool } from './pool.js'

/** A registration ready to be written: personal data sealed, national id reduced to its blind index. */
export interface RecordRow {
  id: string
  campaign: string
  nationalIdIndex: Buffer
  nationalIdSealed: Buffer
  mobileSealed: Buffer
  keyId: string
  firstName: string
  lastName: string
  birthDate: string
  attributes: string | null
  receivedAt: number
  /** 'recorded' when the campaign has checks to run; 'accepted' when it has none. */
  status: 'recorded' | 'accepted'
}

export interface BatchOutcome {
  /** New records. */
  inserted: string[]
  /** Redelivered messages whose record already exists (nothing written), with its status. */
  redelivered: { id: string; status: string }[]
  /** Later submissions by a person already registered in the campaign: id → original id. */
  duplicates: Map<string, string>
  /** Neither written nor matched (the conflicting row vanished meanwhile): to be retried. */
  unmatched: string[]
}

// One statement for the whole batch, with a fixed parameter count (arrays, not N×12 parameters).
// ORDER BY id: when one person appears twice in the batch, the earlier submission (UUIDv7 order)
// becomes the record and the later one the duplicate — first come, first served.
const INSERT_BATCH = `
INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                           first_name, last_name, birth_date, attributes, received_at, status, verdict_at)
SELECT t.id, t.campaign, t.nidx, t.nids, t.mobs, t.key_id, t.fn, t.ln, t.bd, t.attrs,
       to_timestamp(t.ra / 1000.0), t.st, CASE WHEN t.st = 'accepted' THEN now() END
FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::text[], $7::text[], $8::text[],
            $9::date[], $10::jsonb[], $11::float8[], $12::text[])
     AS t(id, campaign, nidx, nids, mobs, key_id, fn, ln, bd, attrs, ra, st)
ORDER BY t.id
ON CONFLICT DO NOTHING
RETURNING id`

// For the rows the insert skipped: a new statement (a new snapshot under READ COMMITTED) sees the
// row each one conflicted with. Same id → a redelivery; another id → a duplicate, recorded once.
const RESOLVE_LEFTOVERS = `
WITH t AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::float8[]) AS t(id, campaign, nidx, ra)
), m AS (
  SELECT t.id, t.campaign, t.ra, r.id AS original_id, r.status
  FROM t JOIN registrations r ON r.campaign = t.campaign AND r.national_id_index = t.nidx
), d AS (
  INSERT INTO duplicates (id, original_id, campaign, received_at)
  SELECT id, original_id, campaign, to_timestamp(ra / 1000.0) FROM m WHERE original_id <> id
  ON CONFLICT (id) DO NOTHING
)
SELECT id::text, original_id::text, status FROM m`

export async function writeRecordBatch(pool: Pool, rows: readonly RecordRow[]): Promise<BatchOutcome> {
  const n = rows.length
  const cols = {
    id: new Array<string>(n),
    campaign: new Array<string>(n),
    nidx: new Array<Buffer>(n),
    nids: new Array<Buffer>(n),
    mobs: new Array<Buffer>(n),
    keyId: new Array<string>(n),
    fn: new Array<string>(n),
    ln: new Array<string>(n),
    bd: new Array<string>(n),
    attrs: new Array<string | null>(n),
    ra: new Array<number>(n),
    st: new Array<string>(n),
  }
  for (let i = 0; i < n; i++) {
    const r = rows[i]!
    cols.id[i] = r.id
    cols.campaign[i] = r.campaign
    cols.nidx[i] = r.nationalIdIndex
    cols.nids[i] = r.nationalIdSealed
    cols.mobs[i] = r.mobileSealed
    cols.keyId[i] = r.keyId
    cols.fn[i] = r.firstName
    cols.ln[i] = r.lastName
    cols.bd[i] = r.birthDate
    cols.attrs[i] = r.attributes
    cols.ra[i] = r.receivedAt
    cols.st[i] = r.status
  }
  const res = await pool.query<{ id: string }>({
    name: 'sabt_insert_batch',
    text: INSERT_BATCH,
    values: [
      cols.id,
      cols.campaign,
      cols.nidx,
      cols.nids,
      cols.mobs,
      cols.keyId,
      cols.fn,
      cols.ln,
      cols.bd,
      cols.attrs,
      cols.ra,
      cols.st,
    ],
  })
  const inserted = res.rows.map((r) => r.id)
  const outcome: BatchOutcome = { inserted, redelivered: [], duplicates: new Map(), unmatched: [] }
  if (inserted.length === n) return outcome

  const done = new Set(inserted)
  const left = rows.filter((r) => !done.has(r.id))
  const m = await pool.query<{ id: string; original_id: string; status: string }>({
    name: 'sabt_resolve_leftovers',
    text: RESOLVE_LEFTOVERS,
    values: [
      left.map((r) => r.id),
      left.map((r) => r.campaign),
      left.map((r) => r.nationalIdIndex),
      left.map((r) => r.receivedAt),
    ],
  })
  const matched = new Set<string>()
  for (const row of m.rows) {
    matched.add(row.id)
    if (row.id === row.original_id) outcome.redelivered.push({ id: row.id, status: row.status })
    else outcome.duplicates.set(row.id, row.original_id)
  }
  for (const r of left) if (!matched.has(r.id)) outcome.unmatched.push(r.id)
  return outcome
}

export interface RecordView {
  id: string
  campaign: string
  status: string
  received_at: Date
  recorded_at: Date
  verdict_at: Date | null
}

export async function findRecord(pool: Pool, id: string): Promise<RecordView | null> {
  const r = await pool.query<RecordView>({
    name: 'sabt_find_record',
    text: 'SELECT id::text, campaign, status, received_at, recorded_at, verdict_at FROM registrations WHERE id = $1',
    values: [id],
  })
  return r.rows[0] ?? null
}

export interface DuplicateView {
  id: string
  original_id: string
  campaign: string
  received_at: Date
  recorded_at: Date
}

export async function findDuplicate(pool: Pool, id: string): Promise<DuplicateView | null> {
  const r = await pool.query<DuplicateView>({
    name: 'sabt_find_duplicate',
    text: 'SELECT id::text, original_id::text, campaign, received_at, recorded_at FROM duplicates WHERE id = $1',
    values: [id],
  })
  return r.rows[0] ?? null
}

export interface CheckResultView {
  check: string
  outcome: 'passed' | 'failed' | 'error' | null
  attempts: number
  latency_ms: number | null
  last_error: string | null
  detail: unknown
  finished_at: Date | null
}

export async function findCheckResults(pool: Pool, id: string): Promise<CheckResultView[]> {
  const r = await pool.query<CheckResultView>({
    name: 'sabt_find_check_results',
    text: `SELECT check_name AS check, outcome, attempts, latency_ms, last_error, detail, finished_at
           FROM check_results WHERE registration_id = $1 ORDER BY check_name`,
    values: [id],
  })
  return r.rows
}

export async function syncCampaigns(
  pool: Pool,
  campaigns: Iterable<{
    slug: string
    title: string
    opensAt: number | null
    closesAt: number | null
    checks: { name: string }[]
    retentionDays: number | null
  }>,
): Promise<void> {
  for (const c of campaigns) {
    await pool.query(
      `INSERT INTO campaigns (slug, title, opens_at, closes_at, checks, retention_days, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, now())
       ON CONFLICT (slug) DO UPDATE SET title = EXCLUDED.title, opens_at = EXCLUDED.opens_at,
         closes_at = EXCLUDED.closes_at, checks = EXCLUDED.checks, retention_days = EXCLUDED.retention_days,
         updated_at = now()`,
      [
        c.slug,
        c.title,
        c.opensAt === null ? null : new Date(c.opensAt),
        c.closesAt === null ? null : new Date(c.closesAt),
        c.checks.map((x) => x.name),
        c.retentionDays,
      ],
    )
  }
}
