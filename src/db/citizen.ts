import type { Pool } from './pool.js'
import { inTransaction } from './transaction.js'

/**
 * The citizen's side (decision 021): tracking codes, the outbox of SMS owed to citizens (a row
 * per registration and kind, made by triggers of migration 0011 in the transaction that records
 * the registration or makes its verdict final), and the one-time codes of "am I registered?".
 */
export type NoticeKind = 'receipt' | 'verdict' | 'allocation' | 'promotion'
/** Every kind of notice (a lottery's draw owes `allocation`, a place given up `promotion`: 0014). */
export const NOTICE_KINDS: readonly NoticeKind[] = ['receipt', 'verdict', 'allocation', 'promotion']

/** The human-friendly alphabet of tracking codes: no 0/O, 1/I/L. */
export const TRACKING_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ'

/**
 * A tracking code as a person may type it: case, spaces and dashes ignored, and the ambiguous
 * characters read as the ones they look like (O→0 is not in the alphabet, so O and 0 are refused).
 */
export function normaliseTrackingCode(input: string): string | null {
  const c = input
    .toUpperCase()
    .replace(/[\s-]/g, '')
    .replace(/[۰-۹]/g, (d) => String(d.charCodeAt(0) - 0x06f0))
  if (c.length !== 8) return null
  for (const ch of c) if (!TRACKING_ALPHABET.includes(ch)) return null
  return c
}

/** How a tracking code is shown: two groups of four. */
export function showTrackingCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`
}

export async function trackingCodeOf(pool: Pool, id: string): Promise<string | null> {
  const r = await pool.query<{ code: string }>({
    name: 'sabt_tracking_code_of',
    text: 'SELECT code FROM tracking_codes WHERE registration_id = $1',
    values: [id],
  })
  return r.rows[0]?.code ?? null
}

export async function registrationOfCode(pool: Pool, campaign: string, code: string): Promise<string | null> {
  const r = await pool.query<{ id: string }>({
    name: 'sabt_registration_of_code',
    text: 'SELECT registration_id::text AS id FROM tracking_codes WHERE campaign = $1 AND code = $2',
    values: [campaign, code],
  })
  return r.rows[0]?.id ?? null
}

/** What an SMS to a citizen needs of its record: the sealed mobile, the code, the verdict. */
export interface NoticeSubject {
  id: string
  campaign: string
  status: string
  mobile_sealed: Buffer | null
  key_id: string
  erased_at: Date | null
  code: string | null
  state: 'pending' | 'sent' | 'error' | 'skipped'
}

export async function loadNoticeSubjects(
  pool: Pool,
  ids: readonly string[],
  kind: NoticeKind,
): Promise<Map<string, NoticeSubject>> {
  const r = await pool.query<NoticeSubject>({
    name: 'sabt_load_notice_subjects',
    text: `SELECT r.id::text, r.campaign, r.status, r.mobile_sealed, r.key_id, r.erased_at, t.code, m.state
             FROM citizen_messages m
             JOIN registrations r ON r.id = m.registration_id
             LEFT JOIN tracking_codes t ON t.registration_id = m.registration_id
            WHERE m.registration_id = ANY($1::uuid[]) AND m.kind = $2`,
    values: [ids, kind],
  })
  return new Map(r.rows.map((row) => [row.id, row]))
}

/**
 * The right to send one message now: taken only while it is pending and nobody holds it (a
 * second copy of its message, a replay racing the original). Held for `holdMs`; a sender killed
 * while holding it lets it lapse, and the message's next delivery sends it then.
 * Returns 0 when taken, else how long (ms) until the holder's claim lapses (-1: not pending).
 */
export async function claimNotice(pool: Pool, id: string, kind: NoticeKind, holdMs: number): Promise<number> {
  const r = await pool.query<{ taken: boolean; wait_ms: number | null; state: string }>({
    name: 'sabt_claim_notice',
    text: `WITH c AS (
             UPDATE citizen_messages SET claimed_until = clock_timestamp() + make_interval(secs => $3::int / 1000.0)
              WHERE registration_id = $1 AND kind = $2 AND state = 'pending'
                AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
             RETURNING 1)
           SELECT EXISTS (SELECT 1 FROM c) AS taken,
                  (SELECT (extract(epoch FROM claimed_until - clock_timestamp()) * 1000)::float8
                     FROM citizen_messages WHERE registration_id = $1 AND kind = $2) AS wait_ms,
                  (SELECT state FROM citizen_messages WHERE registration_id = $1 AND kind = $2) AS state`,
    values: [id, kind, holdMs],
  })
  const row = r.rows[0]
  if (row?.taken) return 0
  if (row?.state !== 'pending') return -1
  return Math.max(1, Math.ceil(row.wait_ms ?? 1))
}

/** What a message told of the person's place (migration 0015). */
export type Told = 'won' | 'waitlisted'

/** A message's end: sent (or skipped: no texts, erased), its claim released; what it told of the place. */
export async function finishNotice(
  pool: Pool,
  id: string,
  kind: NoticeKind,
  state: 'sent' | 'skipped',
  attempts: number,
  error: string | null = null,
  told: Told | null = null,
): Promise<void> {
  await pool.query({
    name: 'sabt_finish_notice',
    text: `UPDATE citizen_messages SET state = $3, attempts = GREATEST(attempts, $4), last_error = $5,
             sent_at = CASE WHEN $3 = 'sent' THEN now() END, claimed_until = NULL, told = $6
            WHERE registration_id = $1 AND kind = $2 AND state = 'pending'`,
    values: [id, kind, state, attempts, error, told],
  })
}

/**
 * Where the message that tells a person's place stands (`verdict` in a first_come campaign,
 * `allocation` in a lottery): null if none is owed; `heldMs` > 0 while a sender holds it.
 */
export async function placeNotice(
  pool: Pool,
  id: string,
  kind: 'verdict' | 'allocation' | 'promotion',
): Promise<{ state: string; told: Told | null; heldMs: number } | null> {
  const r = await pool.query<{ state: string; told: Told | null; held_ms: number | null }>({
    name: 'sabt_place_notice',
    text: `SELECT state, told,
                  CASE WHEN claimed_until > clock_timestamp()
                       THEN (extract(epoch FROM claimed_until - clock_timestamp()) * 1000)::float8 END AS held_ms
             FROM citizen_messages WHERE registration_id = $1 AND kind = $2`,
    values: [id, kind],
  })
  const row = r.rows[0]
  return row ? { state: row.state, told: row.told, heldMs: Math.ceil(row.held_ms ?? 0) } : null
}

/** A failed try: the claim released at once, so the next try need not wait for it to lapse. */
export async function releaseNotice(pool: Pool, id: string, kind: NoticeKind): Promise<void> {
  await pool.query({
    name: 'sabt_release_notice',
    text: 'UPDATE citizen_messages SET claimed_until = NULL WHERE registration_id = $1 AND kind = $2',
    values: [id, kind],
  })
}

/** Retries waiting in a delay tier: not swept again until a lease after they are back. */
export async function recordNoticeRetries(
  pool: Pool,
  kind: NoticeKind,
  retries: readonly { id: string; error: string }[],
  attempts: number,
  dueInMs: number,
): Promise<void> {
  if (retries.length === 0) return
  await pool.query({
    name: 'sabt_notice_retries',
    text: `UPDATE citizen_messages m SET attempts = GREATEST(m.attempts, $3), last_error = t.error,
             due_at = now() + make_interval(secs => $4::int / 1000.0)
             FROM unnest($1::uuid[], $2::text[]) AS t(id, error)
            WHERE m.registration_id = t.id AND m.kind = $5 AND m.state = 'pending'`,
    values: [retries.map((r) => r.id), retries.map((r) => r.error.slice(0, 500)), attempts, dueInMs, kind],
  })
}

/** Dead-lettered messages: `error` (listed, replayable) — unless sent meanwhile. */
export async function recordNoticesDead(
  pool: Pool,
  kind: NoticeKind,
  ids: readonly string[],
  attempts: number,
  error: string,
): Promise<void> {
  await pool.query({
    name: 'sabt_notices_dead',
    text: `UPDATE citizen_messages SET state = 'error', attempts = GREATEST(attempts, $3), last_error = $4,
             claimed_until = NULL
            WHERE registration_id = ANY($1::uuid[]) AND kind = $2 AND state = 'pending'`,
    values: [ids, kind, attempts, error.slice(0, 500)],
  })
}

/** A replay: dead-lettered messages owed again (the replay's own message sends them first). */
export async function noticesOwedAgain(
  pool: Pool,
  kind: NoticeKind,
  ids: readonly string[],
  leaseMs: number,
): Promise<string[]> {
  const r = await pool.query<{ id: string }>({
    name: 'sabt_notices_owed_again',
    text: `UPDATE citizen_messages SET state = 'pending', attempts = 0, claimed_until = NULL,
             due_at = now() + make_interval(secs => $3::int / 1000.0)
            WHERE registration_id = ANY($1::uuid[]) AND kind = $2 AND state = 'error'
            RETURNING registration_id::text AS id`,
    values: [ids, kind, leaseMs],
  })
  return r.rows.map((x) => x.id)
}

/**
 * Owed messages that are due (of the given campaigns), claimed for `leaseMs`: the sweeper
 * publishes them; if that message is lost, they are due again a lease later.
 */
export async function claimDueNotices(
  pool: Pool,
  campaigns: readonly string[],
  leaseMs: number,
  limit: number,
): Promise<{ id: string; kind: NoticeKind; campaign: string }[]> {
  const r = await pool.query<{ id: string; kind: NoticeKind; campaign: string }>({
    name: 'sabt_claim_due_notices',
    text: `WITH due AS (
             SELECT registration_id, kind FROM citizen_messages
              WHERE state = 'pending' AND due_at <= now() AND campaign = ANY($1::text[])
              ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED)
           UPDATE citizen_messages m SET due_at = now() + make_interval(secs => $2::int / 1000.0)
             FROM due WHERE m.registration_id = due.registration_id AND m.kind = due.kind
           RETURNING m.registration_id::text AS id, m.kind, m.campaign`,
    values: [campaigns, leaseMs, limit],
  })
  return r.rows
}

/** Counts by kind and state (tests, the dashboard). */
export async function noticeCounts(pool: Pool): Promise<Record<string, number>> {
  const r = await pool.query<{ k: string; n: number }>(
    `SELECT kind || ':' || state AS k, count(*)::int AS n FROM citizen_messages GROUP BY 1`,
  )
  return Object.fromEntries(r.rows.map((x) => [x.k, x.n]))
}

// ---- one-time codes of "am I registered?" --------------------------------------------------

export interface OtpSubject {
  id: string
  campaign: string
  registration_id: string
  code_sealed: Buffer | null
  key_id: string | null
  mobile_sealed: Buffer | null
  reg_key_id: string
  sms_state: string
  expires_at: Date
}

export async function loadOtpSubject(pool: Pool, id: string): Promise<OtpSubject | null> {
  const r = await pool.query<OtpSubject>({
    name: 'sabt_load_otp_subject',
    text: `SELECT l.id::text, l.campaign, l.registration_id::text, l.code_sealed, l.key_id, r.mobile_sealed,
                  r.key_id AS reg_key_id, l.sms_state, l.expires_at
             FROM lookup_codes l JOIN registrations r ON r.id = l.registration_id WHERE l.id = $1`,
    values: [id],
  })
  return r.rows[0] ?? null
}

/** Like claimNotice, for a one-time code's SMS. */
export async function claimOtp(pool: Pool, id: string, holdMs: number): Promise<number> {
  const r = await pool.query<{ taken: boolean }>({
    name: 'sabt_claim_otp',
    text: `WITH c AS (
             UPDATE lookup_codes SET claimed_until = clock_timestamp() + make_interval(secs => $2::int / 1000.0)
              WHERE id = $1 AND sms_state = 'pending' AND (claimed_until IS NULL OR claimed_until < clock_timestamp())
             RETURNING 1)
           SELECT EXISTS (SELECT 1 FROM c) AS taken`,
    values: [id, holdMs],
  })
  return r.rows[0]?.taken ? 0 : holdMs
}

/** Sent: the sealed copy of the code is gone; only its hash is left to verify against. */
export async function finishOtp(pool: Pool, id: string, state: 'sent' | 'error', error: string | null) {
  await pool.query({
    name: 'sabt_finish_otp',
    text: `UPDATE lookup_codes SET sms_state = $2, sms_error = $3, code_sealed = NULL, claimed_until = NULL,
             sms_attempts = sms_attempts + 1
            WHERE id = $1 AND sms_state = 'pending'`,
    values: [id, state, error],
  })
}

export async function releaseOtp(pool: Pool, id: string, error: string | null): Promise<void> {
  await pool.query({
    name: 'sabt_release_otp',
    text: `UPDATE lookup_codes SET claimed_until = NULL, sms_attempts = sms_attempts + 1, sms_error = $2
            WHERE id = $1`,
    values: [id, error],
  })
}

export async function recordOtpsDead(pool: Pool, ids: readonly string[], error: string): Promise<void> {
  await pool.query({
    name: 'sabt_otps_dead',
    text: `UPDATE lookup_codes SET sms_state = 'error', sms_error = $2, code_sealed = NULL, claimed_until = NULL
            WHERE id = ANY($1::uuid[]) AND sms_state = 'pending'`,
    values: [ids, error.slice(0, 500)],
  })
}

/** Codes whose SMS is owed and due (their message lost), claimed for `leaseMs`. */
export async function claimDueOtps(
  pool: Pool,
  leaseMs: number,
  limit: number,
): Promise<{ id: string; campaign: string }[]> {
  const r = await pool.query<{ id: string; campaign: string }>({
    name: 'sabt_claim_due_otps',
    text: `WITH due AS (
             SELECT id FROM lookup_codes
              WHERE sms_state = 'pending' AND sms_due_at <= now() AND expires_at > now()
              ORDER BY sms_due_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           UPDATE lookup_codes l SET sms_due_at = now() + make_interval(secs => $1::int / 1000.0)
             FROM due WHERE l.id = due.id
           RETURNING l.id::text, l.campaign`,
    values: [leaseMs, limit],
  })
  return r.rows
}

/**
 * Deletes "am I registered?" requests no limit counts any more (older than a day, the longest
 * window of LookupLimits) whose code has expired, in batches; returns how many went. They hold
 * keyed hashes only, but of a national id, a mobile and a client address: kept no longer than
 * the limits need them.
 */
export async function pruneLookupCodes(pool: Pool, batch = 5000): Promise<number> {
  let pruned = 0
  for (;;) {
    const r = await pool.query({
      name: 'sabt-lookup-prune',
      text: `DELETE FROM lookup_codes WHERE id IN (
               SELECT id FROM lookup_codes
               WHERE created_at < now() - interval '1 day' AND expires_at < now()
               ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)`,
      values: [batch],
    })
    pruned += r.rowCount ?? 0
    if ((r.rowCount ?? 0) < batch) return pruned
  }
}

/** Limits on asking for one-time codes: per national id and per mobile a day, per client an hour. */
export interface LookupLimits {
  perNationalIdPerDay: number
  perMobilePerDay: number
  perClientPerHour: number
}

export type LookupRequest =
  | { kind: 'limited'; rule: 'per_national_id' | 'per_mobile' | 'per_client'; retryAfterS: number }
  | {
      kind: 'made'
      id: string
      registration: { id: string; mobile_sealed: Buffer | null; key_id: string } | null
    }

/**
 * One request for a one-time code, in one transaction: the limits counted over every request (a
 * miss too, so a limit never tells a registered person from an unregistered one), under an
 * advisory lock per national id (concurrent requests cannot slip past the count), then the row.
 * `code` is called only when the registration exists and its mobile is the one given.
 */
export async function requestLookup(
  pool: Pool,
  args: {
    id: string
    campaign: string
    nationalIdIndex: Buffer
    mobileIndex: Buffer
    clientIndex: Buffer
    ttlS: number
    limits: LookupLimits
    /** Whether the registration's sealed mobile is the one given (opened by the caller). */
    matches(reg: { id: string; mobile_sealed: Buffer; key_id: string }): boolean
    code(): { hash: Buffer; sealed: Buffer; keyId: string }
    smsLeaseMs: number
  },
): Promise<LookupRequest> {
  return inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 14))', [
      args.nationalIdIndex.toString('hex'),
    ])
    const counts = await client.query<{
      by_id: number
      by_mobile: number
      by_client: number
      id_wait: number | null
      mobile_wait: number | null
      client_wait: number | null
    }>(
      `SELECT
         count(*) FILTER (WHERE national_id_index = $1 AND created_at > now() - interval '1 day')::int AS by_id,
         count(*) FILTER (WHERE mobile_index = $2 AND created_at > now() - interval '1 day')::int AS by_mobile,
         count(*) FILTER (WHERE client_index = $3 AND created_at > now() - interval '1 hour')::int AS by_client,
         ceil(extract(epoch FROM min(created_at) FILTER (WHERE national_id_index = $1 AND created_at > now() - interval '1 day') + interval '1 day' - now()))::int AS id_wait,
         ceil(extract(epoch FROM min(created_at) FILTER (WHERE mobile_index = $2 AND created_at > now() - interval '1 day') + interval '1 day' - now()))::int AS mobile_wait,
         ceil(extract(epoch FROM min(created_at) FILTER (WHERE client_index = $3 AND created_at > now() - interval '1 hour') + interval '1 hour' - now()))::int AS client_wait
       FROM lookup_codes
       WHERE (national_id_index = $1 OR mobile_index = $2 OR client_index = $3) AND created_at > now() - interval '1 day'`,
      [args.nationalIdIndex, args.mobileIndex, args.clientIndex],
    )
    const c = counts.rows[0]!
    const limited = (rule: 'per_national_id' | 'per_mobile' | 'per_client', wait: number | null) => ({
      kind: 'limited' as const,
      rule,
      retryAfterS: Math.max(1, wait ?? 1),
    })
    let out: LookupRequest | null = null
    if (c.by_id >= args.limits.perNationalIdPerDay) out = limited('per_national_id', c.id_wait)
    else if (c.by_mobile >= args.limits.perMobilePerDay) out = limited('per_mobile', c.mobile_wait)
    else if (c.by_client >= args.limits.perClientPerHour) out = limited('per_client', c.client_wait)
    // Limited: nothing written (the transaction ends with the lock; it read only).
    if (out) return out
    const reg = await client.query<{ id: string; mobile_sealed: Buffer | null; key_id: string }>(
      `SELECT id::text, mobile_sealed, key_id FROM registrations
        WHERE campaign = $1 AND national_id_index = $2 AND erased_at IS NULL`,
      [args.campaign, args.nationalIdIndex],
    )
    const found = reg.rows.find((r) => r.mobile_sealed && args.matches(r as never)) ?? null
    const code = found ? args.code() : null
    await client.query(
      `INSERT INTO lookup_codes (id, campaign, registration_id, national_id_index, mobile_index, client_index,
                                 code_hash, code_sealed, key_id, expires_at, sms_state, sms_due_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10::int),
               CASE WHEN $3::uuid IS NULL THEN 'none' ELSE 'pending' END,
               CASE WHEN $3::uuid IS NULL THEN NULL ELSE now() + make_interval(secs => $11::int / 1000.0) END)`,
      [
        args.id,
        args.campaign,
        found?.id ?? null,
        args.nationalIdIndex,
        args.mobileIndex,
        args.clientIndex,
        code?.hash ?? null,
        code?.sealed ?? null,
        code?.keyId ?? null,
        args.ttlS,
        args.smsLeaseMs,
      ],
    )
    return { kind: 'made', id: args.id, registration: found } satisfies LookupRequest
  })
}

export const MAX_WRONG_CODES = 5

export type LookupVerdict =
  | { kind: 'invalid' }
  | { kind: 'locked'; retryAfterS: number }
  | { kind: 'verified'; registrationId: string }

/**
 * A code checked against the latest unexpired, unused request for this national id and mobile:
 * `hashOf(lookupId)` is the HMAC the right code has. Five wrong codes lock that request until it
 * expires; a request for an unregistered person counts wrong codes the same way (it has no right one).
 */
export async function verifyLookup(
  pool: Pool,
  args: {
    campaign: string
    nationalIdIndex: Buffer
    mobileIndex: Buffer
    hashOf(lookupId: string): Buffer
    equal(a: Buffer, b: Buffer): boolean
  },
): Promise<LookupVerdict> {
  return inTransaction(pool, async (client) => {
    const r = await client.query<{
      id: string
      registration_id: string | null
      code_hash: Buffer | null
      wrong_attempts: number
      expires_in_s: number
    }>(
      `SELECT id::text, registration_id::text, code_hash, wrong_attempts,
              ceil(extract(epoch FROM expires_at - now()))::int AS expires_in_s
         FROM lookup_codes
        WHERE campaign = $1 AND national_id_index = $2 AND mobile_index = $3
          AND expires_at > now() AND used_at IS NULL
        ORDER BY created_at DESC LIMIT 1 FOR UPDATE`,
      [args.campaign, args.nationalIdIndex, args.mobileIndex],
    )
    const row = r.rows[0]
    let out: LookupVerdict
    if (!row) out = { kind: 'invalid' }
    else if (row.wrong_attempts >= MAX_WRONG_CODES)
      out = { kind: 'locked', retryAfterS: Math.max(1, row.expires_in_s) }
    else if (row.code_hash && row.registration_id && args.equal(row.code_hash, args.hashOf(row.id))) {
      await client.query('UPDATE lookup_codes SET used_at = now() WHERE id = $1', [row.id])
      out = { kind: 'verified', registrationId: row.registration_id }
    } else {
      const w = await client.query<{ wrong_attempts: number }>(
        'UPDATE lookup_codes SET wrong_attempts = wrong_attempts + 1 WHERE id = $1 RETURNING wrong_attempts',
        [row.id],
      )
      out =
        w.rows[0]!.wrong_attempts >= MAX_WRONG_CODES
          ? { kind: 'locked', retryAfterS: Math.max(1, row.expires_in_s) }
          : { kind: 'invalid' }
    }
    return out
  })
}
