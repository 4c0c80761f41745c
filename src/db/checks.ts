import type { RequiredCheck } from '../domain/verdict.js'
import { decideStatus, isFinal, type Outcome, unlockedBy } from '../domain/verdict.js'
import { type Promoted, reclaimPlace, settlePlaces } from './places.js'
import type { Pool } from './pool.js'
import { inTransaction } from './transaction.js'

/** What the checker reads to ask a provider: the record (sealed fields still sealed) and this check's row. */
export interface CheckSubjectRow {
  id: string
  campaign: string
  status: string
  national_id_sealed: Buffer | null
  mobile_sealed: Buffer | null
  key_id: string
  first_name: string | null
  last_name: string | null
  birth_date: string | null
  erased_at: Date | null
  outcome: Outcome | null
  attempts: number | null
}

export async function loadCheckSubject(
  pool: Pool,
  id: string,
  check: string,
): Promise<CheckSubjectRow | null> {
  const r = await pool.query<CheckSubjectRow>({
    name: 'sabt_load_check_subject',
    text: `SELECT r.id::text, r.campaign, r.status, r.national_id_sealed, r.mobile_sealed, r.key_id,
                  r.first_name, r.last_name, to_char(r.birth_date, 'YYYY-MM-DD') AS birth_date, r.erased_at,
                  c.outcome, c.attempts
           FROM registrations r
           LEFT JOIN check_results c ON c.registration_id = r.id AND c.check_name = $2
           WHERE r.id = $1`,
    values: [id, check],
  })
  return r.rows[0] ?? null
}

export interface OutcomeWritten {
  /** The record's status after this write. */
  status: string
  /** True when this write made the status final (accepted/rejected): the callback fires once. */
  becameFinal: boolean
  /** Checks whose prerequisites are now all passed: to be asked next. */
  unlocked: string[]
  /** False when the check already had a final answer (a redelivery): nothing was written. */
  stored: boolean
  /** Records that took the place this record gave up (decision 015): their first checks are to be asked. */
  promoted: Promoted[]
}

export interface OutcomeArgs {
  id: string
  check: string
  outcome: 'passed' | 'failed'
  attempts: number
  latencyMs: number | null
  detail: unknown
  /** Why a "no": the provider's code, and its words (personal data, never logged). */
  reason?: string | null
  reasonText?: string | null
  required: readonly RequiredCheck[]
  /** The campaign declares a verdict callback: a final verdict marks it pending. */
  hasCallback: boolean
  /** A fresh provider answer for a cached check: kept under this key (a hash of the question). */
  cacheKey?: Buffer | null
  /** The campaign's max_records_per_person (decision 015). */
  maxRecordsPerPerson: number
}

/**
 * Stores definite answers (passed/failed) and recomputes their records' statuses, many at once
 * (the checker writes what its workers answered in the last few milliseconds together), in one
 * transaction that holds the records' row locks — taken in id order, so concurrent batches cannot
 * deadlock — so two checks of one record finishing at once cannot miss each other's result. A
 * result already final is never overwritten; a final status never changes.
 */
export async function recordOutcomes(
  pool: Pool,
  items: readonly OutcomeArgs[],
): Promise<(OutcomeWritten | null)[]> {
  if (items.length === 0) return []
  return inTransaction(pool, async (client) => {
    const ids = [...new Set(items.map((i) => i.id))].sort()
    const locked = await client.query<{ id: string; status: string }>(
      'SELECT id::text, status FROM registrations WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE',
      [ids],
    )
    const statusOf = new Map(locked.rows.map((r) => [r.id, r.status]))
    // One row per (record, check): a redelivered message may bring the same answer twice.
    const unique = new Map<string, OutcomeArgs>()
    for (const i of items)
      if (statusOf.has(i.id) && !unique.has(`${i.id}:${i.check}`)) unique.set(`${i.id}:${i.check}`, i)
    const rows = [...unique.values()]
    const stored = new Set<string>()
    if (rows.length > 0) {
      const ins = await client.query<{ id: string; check_name: string }>(
        `INSERT INTO check_results (registration_id, check_name, outcome, attempts, latency_ms, detail, reason_code, reason_text, last_error, updated_at, finished_at)
         SELECT t.id, t.check_name, t.outcome, t.attempts, t.latency_ms, t.detail, t.reason_code, t.reason_text, NULL, now(), now()
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[], $6::jsonb[], $7::text[], $8::text[])
              AS t(id, check_name, outcome, attempts, latency_ms, detail, reason_code, reason_text)
         ON CONFLICT (registration_id, check_name) DO UPDATE
           SET outcome = EXCLUDED.outcome, attempts = EXCLUDED.attempts, latency_ms = EXCLUDED.latency_ms,
               detail = EXCLUDED.detail, reason_code = EXCLUDED.reason_code, reason_text = EXCLUDED.reason_text,
               updated_at = now(), finished_at = now()
           WHERE check_results.outcome IS NULL OR check_results.outcome = 'error'
         RETURNING registration_id::text AS id, check_name`,
        [
          rows.map((r) => r.id),
          rows.map((r) => r.check),
          rows.map((r) => r.outcome),
          rows.map((r) => r.attempts),
          rows.map((r) => r.latencyMs),
          rows.map((r) => (r.detail === undefined || r.detail === null ? null : JSON.stringify(r.detail))),
          rows.map((r) => r.reason ?? null),
          rows.map((r) => r.reasonText ?? null),
        ],
      )
      for (const r of ins.rows) stored.add(`${r.id}:${r.check_name}`)
      // One row per question: two records asking the same (one person, two campaigns) share it.
      const cached = [
        ...new Map(
          rows.filter((r) => r.cacheKey).map((r) => [`${r.check}:${r.cacheKey!.toString('hex')}`, r]),
        ).values(),
      ]
      if (cached.length > 0)
        await client.query(
          `INSERT INTO check_cache (check_name, input_hash, outcome, detail, created_at)
           SELECT * , now() FROM unnest($1::text[], $2::bytea[], $3::text[], $4::jsonb[])
           ON CONFLICT (check_name, input_hash) DO UPDATE
             SET outcome = EXCLUDED.outcome, detail = EXCLUDED.detail, created_at = now()`,
          [
            cached.map((r) => r.check),
            cached.map((r) => r.cacheKey),
            cached.map((r) => r.outcome),
            cached.map((r) =>
              r.detail === undefined || r.detail === null ? null : JSON.stringify(r.detail),
            ),
          ],
        )
    }
    const all = await client.query<{ id: string; check_name: string; outcome: Outcome | null }>(
      'SELECT registration_id::text AS id, check_name, outcome FROM check_results WHERE registration_id = ANY($1::uuid[])',
      [ids],
    )
    const outcomesOf = new Map<string, Map<string, Outcome | null>>()
    for (const r of all.rows) {
      let m = outcomesOf.get(r.id)
      if (!m) {
        m = new Map()
        outcomesOf.set(r.id, m)
      }
      m.set(r.check_name, r.outcome)
    }
    // The next status of each record, from every one of its results.
    const next = new Map<string, { status: string; final: boolean; callback: boolean }>()
    for (const i of rows) {
      if (next.has(i.id)) continue
      const current = statusOf.get(i.id)!
      if (isFinal(current)) {
        next.set(i.id, { status: current, final: false, callback: false })
        continue
      }
      const st = decideStatus(i.required, outcomesOf.get(i.id) ?? new Map())
      next.set(i.id, { status: st, final: st !== current && isFinal(st), callback: i.hasCallback })
    }
    const changed = [...next.entries()].filter(([id, n]) => n.status !== statusOf.get(id))
    if (changed.length > 0)
      await client.query(
        `UPDATE registrations r SET status = t.status,
           verdict_at = CASE WHEN t.status IN ('accepted', 'rejected') THEN now() ELSE r.verdict_at END,
           callback_status = CASE WHEN t.status IN ('accepted', 'rejected') AND t.callback THEN 'pending' ELSE r.callback_status END
         FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS t(id, status, callback) WHERE r.id = t.id`,
        [changed.map(([id]) => id), changed.map(([, n]) => n.status), changed.map(([, n]) => n.callback)],
      )
    // The person's place, in the same transaction (decision 015).
    const capOf = new Map(rows.map((r) => [r.id, r.maxRecordsPerPerson]))
    const promoted = await settlePlaces(
      client,
      [...next].map(([id, n]) => ({ id, status: n.status, maxRecordsPerPerson: capOf.get(id)! })),
    )

    // Each answer's view: a verdict becomes final once (the first answer of its record says so),
    // and a check unlocked by two answers of one record is asked once.
    const finalAnnounced = new Set<string>()
    const unlockedGiven = new Set<string>()
    const promotedBy = new Map<string, Promoted[]>()
    for (const p of promoted) promotedBy.set(p.promotedFrom, [...(promotedBy.get(p.promotedFrom) ?? []), p])
    return items.map((i) => {
      const n = next.get(i.id)
      if (!n) return null // no such record (erased, never recorded)
      const becameFinal = n.final && !finalAnnounced.has(i.id)
      if (becameFinal) finalAnnounced.add(i.id)
      const unlocked =
        i.outcome === 'passed'
          ? unlockedBy(i.check, i.required, outcomesOf.get(i.id) ?? new Map()).filter((c) => {
              const k = `${i.id}:${c}`
              if (unlockedGiven.has(k)) return false
              unlockedGiven.add(k)
              return true
            })
          : []
      const key = `${i.id}:${i.check}`
      const wasStored = stored.has(key)
      stored.delete(key) // a duplicate answer in the same batch did not store it again
      const promotedHere = promotedBy.get(i.id) ?? []
      promotedBy.delete(i.id) // announced once per record
      return { status: n.status, becameFinal, stored: wasStored, unlocked, promoted: promotedHere }
    })
  })
}

/**
 * loadCheckSubject for many records at once (one query per check message). Two index-driven
 * queries, not one join: for hundreds of ids the planner chose a hash join over a sequential scan
 * of every check result (bench: PostgreSQL at 136 % of a core while checks ran).
 */
export async function loadCheckSubjects(
  pool: Pool,
  ids: readonly string[],
  check: string,
): Promise<Map<string, CheckSubjectRow>> {
  const [regs, results] = await Promise.all([
    pool.query<Omit<CheckSubjectRow, 'outcome' | 'attempts'>>({
      name: 'sabt_load_check_subjects',
      text: `SELECT id::text, campaign, status, national_id_sealed, mobile_sealed, key_id,
                    first_name, last_name, to_char(birth_date, 'YYYY-MM-DD') AS birth_date, erased_at
             FROM registrations WHERE id = ANY($1::uuid[])`,
      values: [ids],
    }),
    pool.query<{ id: string; outcome: CheckSubjectRow['outcome']; attempts: number }>({
      name: 'sabt_load_check_states',
      text: `SELECT registration_id::text AS id, outcome, attempts FROM check_results
             WHERE registration_id = ANY($1::uuid[]) AND check_name = $2`,
      values: [ids, check],
    }),
  ])
  const state = new Map(results.rows.map((r) => [r.id, r]))
  return new Map(
    regs.rows.map((row) => [
      row.id,
      { ...row, outcome: state.get(row.id)?.outcome ?? null, attempts: state.get(row.id)?.attempts ?? null },
    ]),
  )
}

type Queryable = { query: Pool['query'] }

async function finishStatus(
  client: Queryable,
  id: string,
  current: string,
  required: readonly RequiredCheck[],
  hasCallback = false,
): Promise<{ status: string; becameFinal: boolean; outcomes: Map<string, Outcome | null> }> {
  const rows = await client.query<{ check_name: string; outcome: Outcome | null }>(
    'SELECT check_name, outcome FROM check_results WHERE registration_id = $1',
    [id],
  )
  const outcomes = new Map(rows.rows.map((r) => [r.check_name, r.outcome]))
  if (isFinal(current)) return { status: current, becameFinal: false, outcomes }
  const next = decideStatus(required, outcomes)
  if (next === current) return { status: current, becameFinal: false, outcomes }
  await client.query(
    `UPDATE registrations SET status = $2,
         verdict_at = CASE WHEN $2 IN ('accepted', 'rejected') THEN now() ELSE verdict_at END,
         callback_status = CASE WHEN $2 IN ('accepted', 'rejected') AND $3 THEN 'pending' ELSE callback_status END
       WHERE id = $1`,
    [id, next, hasCallback],
  )
  return { status: next, becameFinal: isFinal(next), outcomes }
}

/**
 * Retryable failures of one check: one more attempt spent, the last error kept, the records
 * `verifying`. The records' rows are locked first, in id order, and only then their check rows —
 * the order recordOutcomes and recordDead take them in — so an answer and a retry of the same
 * check arriving together (a duplicate chain) cannot deadlock.
 */
export async function recordAttempts(
  pool: Pool,
  check: string,
  items: readonly { id: string; attempts: number; lastError: string }[],
): Promise<void> {
  if (items.length === 0) return
  // One row per record: ON CONFLICT cannot touch a row twice in one statement.
  const byId = new Map<string, { id: string; attempts: number; lastError: string }>()
  for (const i of items) if ((byId.get(i.id)?.attempts ?? -1) < i.attempts) byId.set(i.id, i)
  const ids = [...byId.keys()].sort()
  return inTransaction(pool, async (client) => {
    const locked = await client.query<{ id: string }>(
      'SELECT id::text FROM registrations WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE',
      [ids],
    )
    const rows = locked.rows.map((r) => byId.get(r.id)!)
    if (rows.length > 0) {
      await client.query(
        `INSERT INTO check_results (registration_id, check_name, outcome, attempts, last_error, updated_at)
         SELECT t.id, $1, NULL, t.attempts, t.last_error, now()
         FROM unnest($2::uuid[], $3::int[], $4::text[]) AS t(id, attempts, last_error)
         ON CONFLICT (registration_id, check_name) DO UPDATE
           SET attempts = GREATEST(check_results.attempts, EXCLUDED.attempts), last_error = EXCLUDED.last_error, updated_at = now()
           WHERE check_results.outcome IS NULL`,
        [check, rows.map((r) => r.id), rows.map((r) => r.attempts), rows.map((r) => r.lastError)],
      )
      await client.query(
        `UPDATE registrations SET status = 'verifying' WHERE id = ANY($1::uuid[]) AND status = 'recorded'`,
        [rows.map((r) => r.id)],
      )
    }
  })
}

/** A retryable failure of one record (recordAttempts for one). */
export async function recordAttempt(
  pool: Pool,
  id: string,
  check: string,
  attempts: number,
  lastError: string,
): Promise<void> {
  await recordAttempts(pool, check, [{ id, attempts, lastError }])
}

/**
 * The last attempt failed: the check is dead-lettered (`error`) and the record `failed` until
 * replayed. Null when there is no such record; `answered` when the check already had a definite
 * answer (nothing written: what follows from the answer is what may be missing); `promoted`, the
 * records that took the place it gave up (decision 015): the caller asks their first checks.
 */
export async function recordDead(
  pool: Pool,
  args: {
    id: string
    check: string
    attempts: number
    lastError: string
    required: readonly RequiredCheck[]
    maxRecordsPerPerson: number
  },
): Promise<{ status: string; answered: boolean; promoted: Promoted[] } | null> {
  return inTransaction(pool, async (client) => {
    const reg = await client.query<{ status: string }>(
      'SELECT status FROM registrations WHERE id = $1 FOR UPDATE',
      [args.id],
    )
    if (reg.rowCount === 0) {
      return null
    }
    const written = await client.query(
      `INSERT INTO check_results (registration_id, check_name, outcome, attempts, last_error, updated_at)
       VALUES ($1, $2, 'error', $3, $4, now())
       ON CONFLICT (registration_id, check_name) DO UPDATE
         SET outcome = 'error', attempts = GREATEST(check_results.attempts, EXCLUDED.attempts),
             last_error = EXCLUDED.last_error, updated_at = now()
         WHERE check_results.outcome IS NULL OR check_results.outcome = 'error'`,
      [args.id, args.check, args.attempts, args.lastError],
    )
    const { status } = await finishStatus(client, args.id, reg.rows[0]!.status, args.required)
    // The person's place, in the same transaction (decision 015).
    const promoted = await settlePlaces(client, [
      { id: args.id, status, maxRecordsPerPerson: args.maxRecordsPerPerson },
    ])
    return { status, answered: written.rowCount === 0, promoted }
  })
}

/**
 * Replay: the check is asked again with fresh attempts; a `failed` record goes back to `verifying`.
 * False when the record is not to be asked again: failed, and another record of the person has
 * taken its place meanwhile (decision 015) — it stays as it is.
 */
export async function resetForReplay(
  pool: Pool,
  id: string,
  check: string,
  required: readonly RequiredCheck[],
): Promise<boolean> {
  return inTransaction(pool, async (client) => {
    const reg = await client.query<{ status: string }>(
      'SELECT status FROM registrations WHERE id = $1 FOR UPDATE',
      [id],
    )
    if (reg.rowCount === 0) {
      return false
    }
    if (reg.rows[0]!.status === 'failed' && !(await reclaimPlace(client, id))) {
      return false
    }
    await client.query(
      `UPDATE check_results SET outcome = NULL, attempts = 0, updated_at = now()
       WHERE registration_id = $1 AND check_name = $2 AND outcome = 'error'`,
      [id, check],
    )
    const status = reg.rows[0]!.status
    if (status === 'failed') {
      // Recompute as if not final: with this check back in progress, failed → verifying.
      const rows = await client.query<{ check_name: string; outcome: Outcome | null }>(
        'SELECT check_name, outcome FROM check_results WHERE registration_id = $1',
        [id],
      )
      const next = decideStatus(required, new Map(rows.rows.map((r) => [r.check_name, r.outcome])))
      await client.query('UPDATE registrations SET status = $2 WHERE id = $1', [id, next])
    }
    return true
  })
}

/** Cached answers to these questions (keyed hashes) still within the TTL, by hex key. */
export async function cachedOutcomes(
  pool: Pool,
  check: string,
  inputHashes: readonly Buffer[],
  ttlS: number,
): Promise<Map<string, { outcome: 'passed' | 'failed'; detail: unknown }>> {
  if (inputHashes.length === 0) return new Map()
  const r = await pool.query<{ input_hash: Buffer; outcome: 'passed' | 'failed'; detail: unknown }>({
    name: 'sabt_cached_outcomes',
    text: `SELECT input_hash, outcome, detail FROM check_cache
           WHERE check_name = $1 AND input_hash = ANY($2::bytea[]) AND created_at > now() - make_interval(secs => $3)`,
    values: [check, inputHashes, ttlS],
  })
  return new Map(
    r.rows.map((row) => [row.input_hash.toString('hex'), { outcome: row.outcome, detail: row.detail }]),
  )
}

export async function pruneCache(pool: Pool, olderThanS: number): Promise<number> {
  const r = await pool.query('DELETE FROM check_cache WHERE created_at < now() - make_interval(secs => $1)', [
    olderThanS,
  ])
  return r.rowCount ?? 0
}

/**
 * Claims a pending callback for one POST, for `ms` (longer than the POST's timeout): false when it
 * is no longer pending, or another sender holds it now (that one sends it; this message sends nothing).
 */
export async function claimCallbackSend(pool: Pool, id: string, ms: number): Promise<boolean> {
  const r = await pool.query({
    name: 'sabt_claim_callback_send',
    text: `UPDATE registrations SET callback_sending_until = now() + make_interval(secs => $2::int / 1000.0)
           WHERE id = $1 AND callback_status = 'pending'
             AND (callback_sending_until IS NULL OR callback_sending_until <= now())`,
    values: [id, ms],
  })
  return r.rowCount === 1
}

/** A claim given up: the POST failed, and the next try may send at once. */
export async function releaseCallbackSend(pool: Pool, id: string): Promise<void> {
  await pool.query('UPDATE registrations SET callback_sending_until = NULL WHERE id = $1', [id])
}

/**
 * Callback bookkeeping (a campaign's verdict callback). A `pending` callback is owed: the sweeper
 * (src/roles/checker/callback-sweeper.ts) sends it again once `callback_due_at` has passed — or,
 * when that is unset, once the verdict is a lease old — so a callback whose message was lost is
 * still sent. `dueInMs` sets when that may happen for a pending one (null: from the verdict).
 */
export async function recordCallback(
  pool: Pool,
  id: string,
  status: 'sent' | 'pending' | 'error',
  attempts: number,
  lastError: string | null,
  dueInMs: number | null = null,
): Promise<void> {
  await pool.query(
    `UPDATE registrations SET callback_status = $2, callback_attempts = $3, callback_last_error = $4,
       callback_due_at = CASE WHEN $2 = 'pending' AND $5::int IS NOT NULL THEN now() + make_interval(secs => $5::int / 1000.0) END,
       callback_sending_until = NULL
     WHERE id = $1`,
    [id, status, attempts, lastError, dueInMs],
  )
}

/** Callbacks that failed and wait in a delay tier: still owed, not to be swept before they are back. */
export async function recordCallbackRetries(
  pool: Pool,
  items: readonly { id: string; error: string }[],
  attempts: number,
  dueInMs: number,
): Promise<void> {
  if (items.length === 0) return
  await pool.query(
    `UPDATE registrations r SET callback_attempts = GREATEST(r.callback_attempts, $2), callback_last_error = t.error,
       callback_due_at = now() + make_interval(secs => $3::int / 1000.0), callback_sending_until = NULL
     FROM unnest($1::uuid[], $4::text[]) AS t(id, error)
     WHERE r.id = t.id AND r.callback_status = 'pending'`,
    [items.map((i) => i.id), attempts, dueInMs, items.map((i) => i.error)],
  )
}

/** Dead-lettered callbacks: `error` (listed, replayable) — unless one was sent meanwhile. */
export async function recordCallbacksDead(
  pool: Pool,
  ids: readonly string[],
  attempts: number,
  lastError: string,
): Promise<number> {
  const r = await pool.query(
    `UPDATE registrations SET callback_status = 'error', callback_attempts = GREATEST(callback_attempts, $2),
       callback_last_error = $3, callback_due_at = NULL, callback_sending_until = NULL
     WHERE id = ANY($1::uuid[]) AND callback_status = 'pending'`,
    [ids, attempts, lastError],
  )
  return r.rowCount ?? 0
}

/** What a callback needs of its record (never personal data). */
export interface CallbackSubject {
  id: string
  campaign: string
  status: string
  verdict_at: Date | null
  callback_status: 'pending' | 'sent' | 'error' | null
}

/** Why a record's checks said no: its failed checks, their reason codes and texts. */
export async function loadRejectionReasons(
  pool: Pool,
  id: string,
): Promise<{ check: string; code: string; text: string | null }[]> {
  const r = await pool.query<{ check: string; code: string | null; text: string | null }>({
    name: 'sabt_load_rejection_reasons',
    text: `SELECT check_name AS check, reason_code AS code, reason_text AS text FROM check_results
           WHERE registration_id = $1 AND outcome = 'failed' ORDER BY finished_at, check_name`,
    values: [id],
  })
  return r.rows.map((x) => ({ check: x.check, code: x.code ?? 'unspecified', text: x.text }))
}

export async function loadCallbackSubject(pool: Pool, id: string): Promise<CallbackSubject | null> {
  const r = await pool.query<CallbackSubject>({
    name: 'sabt_load_callback_subject',
    text: 'SELECT id::text, campaign, status, verdict_at, callback_status FROM registrations WHERE id = $1',
    values: [id],
  })
  return r.rows[0] ?? null
}

/**
 * Pending callbacks that are due (of the given campaigns), claimed for `leaseMs`: their due time
 * moves on by the lease, so concurrent sweepers (SKIP LOCKED) and the next sweep do not send them
 * again while this one's message is on its way.
 */
export async function claimDueCallbacks(
  pool: Pool,
  campaigns: readonly string[],
  leaseMs: number,
  limit: number,
): Promise<{ id: string; campaign: string }[]> {
  if (campaigns.length === 0) return []
  const r = await pool.query<{ id: string; campaign: string }>({
    name: 'sabt_claim_due_callbacks',
    text: `WITH due AS (
             SELECT id FROM registrations
             WHERE callback_status = 'pending' AND campaign = ANY($1::text[])
               AND coalesce(callback_due_at, verdict_at + make_interval(secs => $2::int / 1000.0), recorded_at) <= now()
             ORDER BY coalesce(callback_due_at, verdict_at, recorded_at)
             LIMIT $3
             FOR UPDATE SKIP LOCKED
           )
           UPDATE registrations r SET callback_due_at = now() + make_interval(secs => $2::int / 1000.0)
           FROM due WHERE r.id = due.id
           RETURNING r.id::text, r.campaign`,
    values: [campaigns, leaseMs, limit],
  })
  return r.rows
}

export interface DeadCheckRow {
  registration_id: string
  check: string
  attempts: number
  last_error: string | null
  updated_at: Date
}

/** Dead-lettered checks and callbacks as PostgreSQL knows them (the queue holds the messages). */
export async function listDead(
  pool: Pool,
  opts: { check?: string; limit: number },
): Promise<{ total: number; byCheck: Record<string, number>; items: DeadCheckRow[] }> {
  const counts = await pool.query<{ check: string; n: number }>(
    `SELECT check_name AS check, count(*)::int AS n FROM check_results WHERE outcome = 'error' GROUP BY 1
     UNION ALL
     SELECT 'callback', count(*)::int FROM registrations WHERE callback_status = 'error' HAVING count(*) > 0`,
  )
  const items = await pool.query<DeadCheckRow>(
    `SELECT * FROM (
       SELECT registration_id::text, check_name AS check, attempts, last_error, updated_at
       FROM check_results WHERE outcome = 'error' AND ($1::text IS NULL OR check_name = $1)
       UNION ALL
       SELECT id::text, 'callback', callback_attempts, callback_last_error, coalesce(verdict_at, recorded_at)
       FROM registrations WHERE callback_status = 'error' AND ($1::text IS NULL OR $1 = 'callback')
     ) d ORDER BY updated_at DESC LIMIT $2`,
    [opts.check ?? null, opts.limit],
  )
  const byCheck: Record<string, number> = {}
  for (const c of counts.rows) byCheck[c.check] = c.n
  return { total: Object.values(byCheck).reduce((a, b) => a + b, 0), byCheck, items: items.rows }
}
