import { openField, resealField } from '../privacy/personal-fields.js'
import type { Sealer } from '../privacy/sealing.js'
import type { Pool } from './pool.js'
import { inTransaction } from './transaction.js'

/**
 * Erases the personal data of a campaign's records whose retention has run out (or all of them,
 * with `all`): sealed national id and mobile, names, birth date, attributes, and the blind index.
 * What stays is the count: campaign, status, timestamps. In batches, so a large campaign does not
 * hold one huge transaction; the advisory lock lets one process sweep at a time.
 */
export async function eraseCampaign(
  pool: Pool,
  campaign: string,
  opts: { retentionDays: number | null; all?: boolean; batch?: number },
): Promise<number> {
  if (!opts.all && opts.retentionDays === null) return 0
  const batch = opts.batch ?? 5000
  // Submissions still waiting beside a record (decision 015) hold personal data too: past the
  // retention period they become plain duplicates of the record holding the place (or go, if
  // none holds it any more), before that record loses the blind index that finds them.
  await pool.query(
    `WITH gone AS (
       DELETE FROM waiting w WHERE w.campaign = $1
         AND ($2::boolean OR w.recorded_at < now() - make_interval(days => $3))
       RETURNING w.id, w.campaign, w.national_id_index, w.received_at, w.recorded_at
     )
     INSERT INTO duplicates (id, original_id, campaign, received_at, recorded_at)
     SELECT g.id, r.id, g.campaign, g.received_at, g.recorded_at
     FROM gone g JOIN registrations r
       ON r.campaign = g.campaign AND r.national_id_index = g.national_id_index AND r.holds_place
     ON CONFLICT (id) DO NOTHING`,
    [campaign, opts.all ?? false, opts.retentionDays ?? 0],
  )
  let erased = 0
  for (;;) {
    const r = await pool.query(
      `WITH victims AS (
         SELECT id FROM registrations
         WHERE campaign = $1 AND erased_at IS NULL
           AND ($2::boolean OR recorded_at < now() - make_interval(days => $3))
         LIMIT $4
         FOR UPDATE SKIP LOCKED
       )
       UPDATE registrations r SET national_id_index = NULL, national_id_sealed = NULL, mobile_sealed = NULL,
              first_name = NULL, last_name = NULL, birth_date = NULL, attributes = NULL, erased_at = now()
       FROM victims WHERE r.id = victims.id`,
      [campaign, opts.all ?? false, opts.retentionDays ?? 0, batch],
    )
    // A provider's reason text is treated as personal data: it goes with the rest.
    await pool.query(
      `UPDATE check_results c SET reason_text = NULL, detail = detail - 'reason_text'
       FROM registrations r WHERE c.registration_id = r.id AND r.campaign = $1 AND r.erased_at IS NOT NULL
         AND c.reason_text IS NOT NULL`,
      [campaign],
    )
    erased += r.rowCount ?? 0
    if ((r.rowCount ?? 0) < batch) return erased
  }
}

/** Runs `fn` only if no other process holds the named advisory lock (a sweep needs one runner). */
export async function withSweepLock<T>(pool: Pool, name: string, fn: () => Promise<T>): Promise<T | null> {
  const client = await pool.connect()
  try {
    const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [name])
    if (!got.rows[0]?.ok) return null
    try {
      return await fn()
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [name])
    }
  } finally {
    client.release()
  }
}

/**
 * Re-seals records sealed under an old data key with the current one (key rotation), in batches,
 * walking the primary key so each row is visited once. Returns how many rows were re-sealed.
 * The blind index is keyed separately (SABT_INDEX_KEY) and stays as it is.
 */
export async function resealAll(pool: Pool, sealer: Sealer, opts: { batch?: number } = {}): Promise<number> {
  // Records, and the submissions waiting beside them (decision 015): both may become records.
  return (
    (await resealTable(pool, sealer, 'registrations', opts.batch ?? 1000)) +
    (await resealTable(pool, sealer, 'waiting', opts.batch ?? 1000))
  )
}

async function resealTable(
  pool: Pool,
  sealer: Sealer,
  table: 'registrations' | 'waiting',
  batch: number,
): Promise<number> {
  const erasedClause = table === 'registrations' ? 'AND erased_at IS NULL' : ''
  let last = '00000000-0000-0000-0000-000000000000'
  let total = 0
  for (;;) {
    // One batch per transaction: each commits on its own, and a rerun picks up where it stopped.
    const finished = await inTransaction(pool, async (client) => {
      const rows = await client.query<{
        id: string
        national_id_sealed: Buffer
        mobile_sealed: Buffer
        key_id: string
      }>(
        `SELECT id::text, national_id_sealed, mobile_sealed, key_id FROM ${table}
         WHERE id > $1 ${erasedClause} AND key_id <> $2
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`,
        [last, sealer.currentKeyId, batch],
      )
      if (rows.rows.length === 0) return true
      const ids: string[] = []
      const nids: Buffer[] = []
      const mobs: Buffer[] = []
      for (const r of rows.rows) {
        ids.push(r.id)
        nids.push(resealField(sealer, r.id, 'national_id', r.national_id_sealed, r.key_id))
        mobs.push(resealField(sealer, r.id, 'mobile', r.mobile_sealed, r.key_id))
      }
      await client.query(
        `UPDATE ${table} r SET national_id_sealed = t.nids, mobile_sealed = t.mobs, key_id = $4
         FROM unnest($1::uuid[], $2::bytea[], $3::bytea[]) AS t(id, nids, mobs) WHERE r.id = t.id`,
        [ids, nids, mobs, sealer.currentKeyId],
      )
      total += ids.length
      last = ids[ids.length - 1]!
      return false
    })
    if (finished) return total
  }
}

/** Records of a person (by the blind index of their national id), across campaigns. */
export async function findByNationalIdIndex(
  pool: Pool,
  index: Buffer,
  limit = 20,
): Promise<{ id: string; campaign: string; status: string; received_at: Date }[]> {
  const r = await pool.query<{ id: string; campaign: string; status: string; received_at: Date }>(
    'SELECT id::text, campaign, status, received_at FROM registrations WHERE national_id_index = $1 ORDER BY received_at LIMIT $2',
    [index, limit],
  )
  return r.rows
}

export interface Reindexed {
  registrations: number
  waiting: number
  /** "Am I registered?" requests dropped: their limits were counted by the old key's indexes. */
  lookups: number
  /** Cached provider answers dropped: they are kept under the old key's blind index. */
  cached: number
}

/**
 * The blind index rotated, offline (docs/security.md): every national id still held is opened with
 * the data keys (`sealer`) and its index recomputed with `next` — the registrations and the
 * submissions waiting beside them — and what was kept under the old key's indexes and can be
 * lost is dropped (lookup requests, the checks' answer cache). One transaction: a crash leaves
 * every index under the old key, never some under each; the roles that compute indexes must be
 * stopped meanwhile (they would keep writing the old key's), then started with the new key.
 */
export async function reindexAll(pool: Pool, sealer: Sealer, next: Sealer): Promise<Reindexed> {
  return inTransaction(pool, async (tx) => {
    // Nobody writes beside us (a role left running would write the old key's index).
    await tx.query('LOCK TABLE registrations, waiting, lookup_codes, check_cache IN EXCLUSIVE MODE')
    const count = { registrations: 0, waiting: 0, lookups: 0, cached: 0 }
    for (const table of ['registrations', 'waiting'] as const) {
      const erased = table === 'registrations' ? 'AND erased_at IS NULL' : ''
      let last = '00000000-0000-0000-0000-000000000000'
      for (;;) {
        const rows = await tx.query<{ id: string; national_id_sealed: Buffer; key_id: string }>(
          `SELECT id::text, national_id_sealed, key_id FROM ${table}
           WHERE id > $1 AND national_id_sealed IS NOT NULL ${erased} ORDER BY id LIMIT 1000`,
          [last],
        )
        if (rows.rows.length === 0) break
        const ids = rows.rows.map((r) => r.id)
        const indexes = rows.rows.map((r) =>
          next.blindIndex(openField(sealer, r.id, 'national_id', r.national_id_sealed, r.key_id)),
        )
        await tx.query(
          `UPDATE ${table} t SET national_id_index = u.idx
           FROM unnest($1::uuid[], $2::bytea[]) AS u(id, idx) WHERE t.id = u.id`,
          [ids, indexes],
        )
        count[table] += ids.length
        last = ids[ids.length - 1]!
      }
    }
    count.lookups = (await tx.query('DELETE FROM lookup_codes')).rowCount ?? 0
    count.cached = (await tx.query('DELETE FROM check_cache')).rowCount ?? 0
    return count
  })
}
