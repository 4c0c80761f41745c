import type { SabtConfig } from '../config/campaigns.js'
import { type Allocation, allocationOf } from '../db/draws.js'
import { findWaiting } from '../db/places.js'
import type { Pool } from '../db/pool.js'
import { findCheckResults, findDuplicate, findRecord } from '../db/registrations.js'
import { isUuidV7, uuidV7Time } from '../domain/uuid7.js'

export interface CheckView {
  check: string
  /** `pending` while attempts are being made; `skipped` when the verdict came before it was needed. */
  outcome: 'passed' | 'failed' | 'error' | 'pending' | 'skipped'
  attempts: number
  latency_ms: number | null
  last_error: string | null
  /** Why a failed check said no: the provider's code and its words (personal data, never logged). */
  reason: CheckReason | null
  finished_at: string | null
}

export interface CheckReason {
  code: string
  text: string | null
}

export type RegistrationView =
  | {
      kind: 'record'
      id: string
      campaign: string
      status: string
      received_at: string
      recorded_at: string
      verdict_at: string | null
      checks: CheckView[]
      /** In a scarce campaign (decision 019): won, waitlisted (position), released, not_drawn, pending. */
      allocation: Allocation | null
    }
  | {
      kind: 'duplicate'
      id: string
      campaign: string
      status: 'duplicate'
      original_id: string
      received_at: string
      recorded_at: string
    }
  | {
      kind: 'waiting'
      id: string
      campaign: string
      status: 'waiting'
      received_at: string
      recorded_at: string
    }
  | { kind: 'queued'; id: string; status: 'queued'; received_at: string }
  | { kind: 'unknown'; id: string }

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(id: string): boolean {
  return UUID.test(id)
}

/**
 * What Sabt knows of a registration id — everything, for operators (`sabt status`, the admin
 * lookup); the public status API shows only `publicStatus` of it. Its record (with each check), a
 * duplicate pointing at the original, a submission waiting beside the person's record being
 * checked (decision 015), "queued" (a UUIDv7 minted in the last few minutes: the gateway took it,
 * the recorder has not written it yet), or unknown.
 */
export async function lookupRegistration(
  pool: Pool,
  config: SabtConfig,
  id: string,
  queuedWindowMs: number,
  now = Date.now(),
): Promise<RegistrationView> {
  const lower = id.toLowerCase()
  const record = await findRecord(pool, lower)
  if (record) {
    const stored = new Map((await findCheckResults(pool, lower)).map((c) => [c.check, c]))
    const required = config.campaigns.get(record.campaign)?.checks.map((c) => c.name) ?? []
    const names = [...required, ...[...stored.keys()].filter((n) => !required.includes(n))]
    const allocation = await allocationOf(pool, config.campaigns.get(record.campaign), record)
    return {
      kind: 'record',
      id: record.id,
      campaign: record.campaign,
      status: record.status,
      received_at: record.received_at.toISOString(),
      recorded_at: record.recorded_at.toISOString(),
      verdict_at: record.verdict_at ? record.verdict_at.toISOString() : null,
      checks: names.map((name) => {
        const c = stored.get(name)
        return {
          check: name,
          outcome: c?.outcome ?? (record.status === 'rejected' ? 'skipped' : 'pending'),
          attempts: c?.attempts ?? 0,
          latency_ms: c?.latency_ms ?? null,
          last_error: c?.last_error ?? null,
          reason:
            c?.outcome === 'failed'
              ? { code: c.reason_code ?? 'unspecified', text: c.reason_text ?? null }
              : null,
          finished_at: c?.finished_at ? c.finished_at.toISOString() : null,
        }
      }),
      allocation,
    }
  }
  const dup = await findDuplicate(pool, lower)
  if (dup)
    return {
      kind: 'duplicate',
      id: dup.id,
      campaign: dup.campaign,
      status: 'duplicate',
      original_id: dup.original_id,
      received_at: dup.received_at.toISOString(),
      recorded_at: dup.recorded_at.toISOString(),
    }
  const waiting = await findWaiting(pool, lower)
  if (waiting)
    return {
      kind: 'waiting',
      id: waiting.id,
      campaign: waiting.campaign,
      status: 'waiting',
      received_at: waiting.received_at.toISOString(),
      recorded_at: waiting.recorded_at.toISOString(),
    }
  if (isUuidV7(lower)) {
    const t = uuidV7Time(lower)
    // Minted recently (allowing a little clock skew between gateway and status hosts).
    if (t <= now + 5000 && now - t <= queuedWindowMs)
      return { kind: 'queued', id: lower, status: 'queued', received_at: new Date(t).toISOString() }
  }
  return { kind: 'unknown', id: lower }
}

/** A check as the public sees it: where it stands, nothing of how (attempts, latency, errors). */
export interface PublicCheck {
  check: string
  /** A dead-lettered check (`error`) is `pending`: it is asked again once replayed. */
  outcome: 'pending' | 'passed' | 'failed' | 'skipped'
  /** Why a failed check said no (only on a failed check). */
  reason?: CheckReason
}

export type PublicStatus =
  | {
      id: string
      campaign: string
      status: string
      received_at: string
      recorded_at: string
      verdict_at: string | null
      checks: PublicCheck[]
      allocation?: Allocation
    }
  | {
      id: string
      campaign: string
      status: 'duplicate' | 'waiting'
      received_at: string
      recorded_at: string
    }
  | { id: string; status: 'queued'; received_at: string }

/**
 * What anyone holding a registration id may read: the registration's own state. A duplicate or a
 * waiting submission says so and nothing of the person's other record (its id, status or checks
 * would tell a stranger who submitted someone's national id whether, and how, that person
 * registered); a check says only pending / passed / failed (or skipped: not needed for the verdict).
 */
export function publicStatus(view: Exclude<RegistrationView, { kind: 'unknown' }>): PublicStatus {
  switch (view.kind) {
    case 'record':
      return {
        id: view.id,
        campaign: view.campaign,
        status: view.status,
        received_at: view.received_at,
        recorded_at: view.recorded_at,
        verdict_at: view.verdict_at,
        checks: view.checks.map((c) => ({
          check: c.check,
          outcome: c.outcome === 'error' ? 'pending' : c.outcome,
          ...(c.reason ? { reason: c.reason } : {}),
        })),
        ...(view.allocation ? { allocation: view.allocation } : {}),
      }
    case 'duplicate':
    case 'waiting':
      return {
        id: view.id,
        campaign: view.campaign,
        status: view.status,
        received_at: view.received_at,
        recorded_at: view.recorded_at,
      }
    case 'queued':
      return { id: view.id, status: 'queued', received_at: view.received_at }
  }
}

/**
 * A lookup through a streaming replica (DATABASE_READ_URL): what the replica cannot tell yet (a
 * registration recorded a moment ago is "queued" or unknown there) is asked of the primary, and
 * so is everything while the replica is unreachable. A status read through the replica is never
 * a 404, nor "queued", for a registration the primary has recorded.
 */
export async function lookupThroughReplica(
  replica: Pool,
  primary: Pool,
  config: SabtConfig,
  id: string,
  queuedWindowMs: number,
  now = Date.now(),
): Promise<RegistrationView> {
  if (replica === primary) return lookupRegistration(primary, config, id, queuedWindowMs, now)
  const view = await lookupRegistration(replica, config, id, queuedWindowMs, now).catch(() => null)
  if (view && view.kind !== 'queued' && view.kind !== 'unknown') return view
  return lookupRegistration(primary, config, id, queuedWindowMs, now)
}
