import type { Pool } from './pool.js'

/**
 * The citizen's side (decision 021): tracking codes, the outbox of SMS owed to citizens (a row
 * per registration and kind, made by triggers of migration 0011 in the transaction that records
 * the registration or makes its verdict final), and the one-time codes of "am I registered?".
 */
export type NoticeKind = 'receipt' | 'verdict'

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

/** A message's end: sent (or skipped: no texts, erased), its claim released. */
export async function finishNotice(
  pool: Pool,
  id: string,
  kind: NoticeKind,
  state: 'sent' | 'skipped',
  attempts: number,
  error: string | null = null,
): Promise<void> {
  await pool.query({
    name: 'sabt_finish_notice',
    text: `UPDATE citizen_messages SET state = $3, attempts = GREATEST(attempts, $4), last_error = $5,
             sent_at = CASE WHEN $3 = 'sent' THEN now() END, claimed_until = NULL
            WHERE registration_id = $1 AND kind = $2 AND state = 'pending'`,
    values: [id, kind, state, attempts, error],
  })
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

/** The AAD a one-time code is sealed under (only until its SMS is sent). */
export const otpAad = (id: string) => `lookup:${id}`

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
