import type { Pool } from './pool.js'
import { inTransaction } from './transaction.js'

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
  /** The campaign's max_records_per_person: past it, a later submission is a plain duplicate. */
  maxRecordsPerPerson: number
}

export interface BatchOutcome {
  /** New records. */
  inserted: string[]
  /** Redelivered messages whose record already exists (nothing written), with its status. */
  redelivered: { id: string; status: string }[]
  /** Later submissions by a person whose place is taken (accepted, or at the cap): id → the record holding it. */
  duplicates: Map<string, string>
  /** Later submissions kept beside a record still being checked: one of them takes its place if it gives it up. */
  waiting: string[]
  /** Neither written nor matched (the place changed hands again and again meanwhile): to be retried. */
  unmatched: string[]
}

// One statement for the whole batch, with a fixed parameter count (arrays, not N×12 parameters).
// ORDER BY id: when one person appears twice in the batch, the earlier submission (UUIDv7 order)
// becomes the record and the later one waits beside it — first come, first served. The conflict
// is on the primary key (a redelivery) or on registrations_place, the partial unique index over
// the records holding their person's place (decision 015).
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

// The rows the insert skipped, by primary key first: a redelivery of a record (even one whose
// personal data and blind index were erased since), of a duplicate or of a waiting submission.
const KNOWN_IDS = `
SELECT t.id::text, r.status, d.original_id::text AS duplicate_of, w.id IS NOT NULL AS waiting
FROM unnest($1::uuid[]) AS t(id)
LEFT JOIN registrations r ON r.id = t.id
LEFT JOIN duplicates d ON d.id = t.id
LEFT JOIN waiting w ON w.id = t.id`

// The holders of the places the other rows ran into, locked (in id order, like the checker's
// verdict writes) so that no verdict moves a place while submissions are admitted beside it.
const LOCK_HOLDERS = `
SELECT r.id::text, r.campaign, r.national_id_index AS nidx, r.status
FROM unnest($1::text[], $2::bytea[]) AS p(campaign, nidx)
JOIN registrations r ON r.campaign = p.campaign AND r.national_id_index = p.nidx AND r.holds_place
ORDER BY r.id
FOR NO KEY UPDATE OF r`

// Taken after the locks (a new snapshot): what the person already has in the campaign.
const PLACE_COUNTS = `
SELECT (SELECT count(*)::int FROM registrations x WHERE x.campaign = p.campaign AND x.national_id_index = p.nidx) AS records,
       (SELECT count(*)::int FROM waiting w WHERE w.campaign = p.campaign AND w.national_id_index = p.nidx) AS waiting
FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS p(campaign, nidx, n)
ORDER BY p.n`

// An id already stored anywhere (a second delivery racing the first) is not stored again.
const ADMIT = `
WITH w AS (
  INSERT INTO waiting (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                       first_name, last_name, birth_date, attributes, received_at)
  SELECT t.id, t.campaign, t.nidx, t.nids, t.mobs, t.key_id, t.fn, t.ln, t.bd, t.attrs, to_timestamp(t.ra / 1000.0)
  FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::text[], $7::text[], $8::text[],
              $9::date[], $10::jsonb[], $11::float8[])
       AS t(id, campaign, nidx, nids, mobs, key_id, fn, ln, bd, attrs, ra)
  WHERE NOT EXISTS (SELECT 1 FROM registrations r WHERE r.id = t.id)
    AND NOT EXISTS (SELECT 1 FROM duplicates d WHERE d.id = t.id)
  ON CONFLICT (id) DO NOTHING
), d AS (
  INSERT INTO duplicates (id, original_id, campaign, received_at)
  SELECT t.id, t.original_id, t.campaign, to_timestamp(t.ra / 1000.0)
  FROM unnest($12::uuid[], $13::uuid[], $14::text[], $15::float8[]) AS t(id, original_id, campaign, ra)
  WHERE NOT EXISTS (SELECT 1 FROM registrations r WHERE r.id = t.id)
    AND NOT EXISTS (SELECT 1 FROM waiting w WHERE w.id = t.id)
  ON CONFLICT (id) DO NOTHING
)
SELECT 1`

/** Rounds of insert → resolve before a row whose place keeps changing hands is handed back. */
const MAX_ROUNDS = 3

async function insertRows(pool: Pool, rows: readonly RecordRow[]): Promise<string[]> {
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
  return res.rows.map((r) => r.id)
}

/**
 * Writes a batch: one INSERT for all of it (the hot path: a person's first submission), then, only
 * for the rows it skipped, what they are — a redelivery, a submission to keep waiting beside the
 * record being checked, or a duplicate. A row whose place was given up in the meantime is
 * inserted again (a new round).
 */
export async function writeRecordBatch(pool: Pool, rows: readonly RecordRow[]): Promise<BatchOutcome> {
  const outcome: BatchOutcome = {
    inserted: [],
    redelivered: [],
    duplicates: new Map(),
    waiting: [],
    unmatched: [],
  }
  let pending: readonly RecordRow[] = rows
  for (let round = 0; round < MAX_ROUNDS && pending.length > 0; round++) {
    const inserted = await insertRows(pool, pending)
    outcome.inserted.push(...inserted)
    if (inserted.length === pending.length) return outcome
    const done = new Set(inserted)
    pending = await resolveLeftovers(
      pool,
      pending.filter((r) => !done.has(r.id)),
      outcome,
    )
  }
  for (const r of pending) outcome.unmatched.push(r.id)
  return outcome
}

/** Sorts the skipped rows into the outcome; returns those whose place had no holder (to insert again). */
async function resolveLeftovers(
  pool: Pool,
  left: readonly RecordRow[],
  outcome: BatchOutcome,
): Promise<RecordRow[]> {
  const known = await pool.query<{
    id: string
    status: string | null
    duplicate_of: string | null
    waiting: boolean
  }>({ name: 'sabt_known_ids', text: KNOWN_IDS, values: [left.map((r) => r.id)] })
  const byId = new Map(known.rows.map((k) => [k.id, k]))
  const fresh: RecordRow[] = []
  const freshIds = new Set<string>()
  for (const r of left) {
    const k = byId.get(r.id)
    if (k?.status) outcome.redelivered.push({ id: r.id, status: k.status })
    else if (k?.duplicate_of) outcome.duplicates.set(r.id, k.duplicate_of)
    else if (k?.waiting) outcome.waiting.push(r.id)
    else if (!freshIds.has(r.id)) {
      freshIds.add(r.id) // one message delivered twice in a batch is one submission
      fresh.push(r)
    }
  }
  if (fresh.length === 0) return []

  // One entry per place, in a fixed order; each place's new rows in arrival (id) order.
  const places = new Map<string, { campaign: string; nidx: Buffer; rows: RecordRow[] }>()
  for (const r of [...fresh].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const key = `${r.campaign}\u0000${r.nationalIdIndex.toString('hex')}`
    let p = places.get(key)
    if (!p) {
      p = { campaign: r.campaign, nidx: r.nationalIdIndex, rows: [] }
      places.set(key, p)
    }
    p.rows.push(r)
  }
  const list = [...places.values()]
  const again: RecordRow[] = []
  const toWait: RecordRow[] = []
  const toDuplicate: { row: RecordRow; original: string }[] = []

  await inTransaction(pool, async (client) => {
    const holders = await client.query<{ id: string; campaign: string; nidx: Buffer; status: string }>({
      name: 'sabt_lock_place_holders',
      text: LOCK_HOLDERS,
      values: [list.map((p) => p.campaign), list.map((p) => p.nidx)],
    })
    const holderOf = new Map(
      holders.rows.map((h) => [`${h.campaign}\u0000${h.nidx.toString('hex')}`, h] as const),
    )
    const counts = await client.query<{ records: number; waiting: number }>({
      name: 'sabt_place_counts',
      text: PLACE_COUNTS,
      values: [list.map((p) => p.campaign), list.map((p) => p.nidx)],
    })
    list.forEach((p, i) => {
      const h = holderOf.get(`${p.campaign}\u0000${p.nidx.toString('hex')}`)
      if (!h) {
        again.push(...p.rows) // given up meanwhile: the place is free, insert again
        return
      }
      const open = h.status === 'recorded' || h.status === 'verifying'
      let admitted = counts.rows[i]!.records + counts.rows[i]!.waiting
      for (const row of p.rows) {
        if (open && admitted < row.maxRecordsPerPerson) {
          toWait.push(row)
          admitted++
        } else toDuplicate.push({ row, original: h.id })
      }
    })
    if (toWait.length > 0 || toDuplicate.length > 0)
      await client.query({
        name: 'sabt_admit_leftovers',
        text: ADMIT,
        values: [
          toWait.map((r) => r.id),
          toWait.map((r) => r.campaign),
          toWait.map((r) => r.nationalIdIndex),
          toWait.map((r) => r.nationalIdSealed),
          toWait.map((r) => r.mobileSealed),
          toWait.map((r) => r.keyId),
          toWait.map((r) => r.firstName),
          toWait.map((r) => r.lastName),
          toWait.map((r) => r.birthDate),
          toWait.map((r) => r.attributes),
          toWait.map((r) => r.receivedAt),
          toDuplicate.map((d) => d.row.id),
          toDuplicate.map((d) => d.original),
          toDuplicate.map((d) => d.row.campaign),
          toDuplicate.map((d) => d.row.receivedAt),
        ],
      })
  })
  for (const r of toWait) outcome.waiting.push(r.id)
  for (const d of toDuplicate) outcome.duplicates.set(d.row.id, d.original)
  return again
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
  reason_code: string | null
  /** The provider's words: personal data (never logged). */
  reason_text: string | null
  finished_at: Date | null
}

export async function findCheckResults(pool: Pool, id: string): Promise<CheckResultView[]> {
  const r = await pool.query<CheckResultView>({
    name: 'sabt_find_check_results',
    text: `SELECT check_name AS check, outcome, attempts, latency_ms, last_error, detail, reason_code, reason_text, finished_at
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
  /** Whether citizens are sent SMS (the configuration has an `sms:` provider): outbox rows are written only then. */
  opts: { citizenSms?: boolean } = {},
): Promise<void> {
  for (const c of campaigns) {
    await pool.query(
      `INSERT INTO campaigns (slug, title, opens_at, closes_at, checks, retention_days, citizen_sms, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, now())
       ON CONFLICT (slug) DO UPDATE SET title = EXCLUDED.title, opens_at = EXCLUDED.opens_at,
         closes_at = EXCLUDED.closes_at, checks = EXCLUDED.checks, retention_days = EXCLUDED.retention_days,
         citizen_sms = EXCLUDED.citizen_sms, updated_at = now()`,
      [
        c.slug,
        c.title,
        c.opensAt === null ? null : new Date(c.opensAt),
        c.closesAt === null ? null : new Date(c.closesAt),
        c.checks.map((x) => x.name),
        c.retentionDays,
        opts.citizenSms ?? false,
      ],
    )
  }
}
