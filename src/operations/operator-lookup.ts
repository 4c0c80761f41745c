import type { SabtConfig } from '../config/campaigns.js'
import { findRecordDetail, findRecordsByNationalIdIndex, type RecordDetail } from '../db/dashboard.js'
import { findPlaceHolder } from '../db/places.js'
import type { Pool } from '../db/pool.js'
import { checkNationalId, toAsciiDigits } from '../domain/index.js'
import { maskDigits } from '../observability/logger.js'
import { openField } from '../privacy/personal-fields.js'
import type { Sealer } from '../privacy/sealing.js'
import { type CheckView, isUuid, lookupRegistration } from './lookup.js'

/**
 * What an operator may see of a registration: its state and checks, the person's names (to tell
 * people apart), and national id and mobile masked (first two and last two digits) — except the
 * national id the operator typed to search, which they already know.
 */
export interface OperatorRecord {
  id: string
  campaign: string
  status: string
  first_name: string | null
  last_name: string | null
  /** Masked, or in full when it is what was searched for; null once erased. */
  national_id: string | null
  mobile: string | null
  received_at: string
  recorded_at: string
  verdict_at: string | null
  duplicates: number
  /** Holds the person's place in its campaign; false once it gave it up (rejected or failed, decision 015). */
  holds_place: boolean
  promoted_from: string | null
  checks: CheckView[]
}

export type OperatorLookup =
  | { kind: 'invalid'; message: string }
  | { kind: 'not_found'; by: 'id' | 'national_id' }
  | { kind: 'queued'; id: string; received_at: string }
  | {
      kind: 'duplicate'
      id: string
      original_id: string
      received_at: string
      original: OperatorRecord | null
    }
  | {
      kind: 'waiting'
      id: string
      received_at: string
      /** The person's record being checked, whose place this submission waits for. */
      holder: OperatorRecord | null
    }
  | { kind: 'records'; by: 'id' | 'national_id'; records: OperatorRecord[] }

export interface OperatorLookupDeps {
  pool: Pool
  config: SabtConfig
  sealer: Sealer
  queuedWindowMs: number
}

function open(deps: OperatorLookupDeps, r: RecordDetail, field: 'national_id' | 'mobile'): string | null {
  const sealed = field === 'national_id' ? r.national_id_sealed : r.mobile_sealed
  if (!sealed || r.erased_at) return null
  try {
    return openField(deps.sealer, r.id, field, sealed, r.key_id)
  } catch {
    return '(cannot be opened: key not configured)'
  }
}

async function operatorRecord(
  deps: OperatorLookupDeps,
  r: RecordDetail,
  searchedNationalId: string | null,
): Promise<OperatorRecord> {
  const view = await lookupRegistration(deps.pool, deps.config, r.id, deps.queuedWindowMs)
  const nationalId = open(deps, r, 'national_id')
  const mobile = open(deps, r, 'mobile')
  return {
    id: r.id,
    campaign: r.campaign,
    status: r.status,
    first_name: r.first_name,
    last_name: r.last_name,
    national_id:
      nationalId === null ? null : nationalId === searchedNationalId ? nationalId : maskDigits(nationalId),
    mobile: mobile === null ? null : maskDigits(mobile),
    received_at: r.received_at.toISOString(),
    recorded_at: r.recorded_at.toISOString(),
    verdict_at: r.verdict_at ? r.verdict_at.toISOString() : null,
    duplicates: r.duplicates,
    holds_place: r.holds_place,
    promoted_from: r.promoted_from,
    checks: view.kind === 'record' ? view.checks : [],
  }
}

/** Finds by registration id (a UUID) or by national id (10 digits, Persian digits accepted). */
export async function lookupForOperator(deps: OperatorLookupDeps, query: string): Promise<OperatorLookup> {
  const q = toAsciiDigits(query.trim())
  if (isUuid(q)) {
    const id = q.toLowerCase()
    const detail = await findRecordDetail(deps.pool, id)
    if (detail) return { kind: 'records', by: 'id', records: [await operatorRecord(deps, detail, null)] }
    const view = await lookupRegistration(deps.pool, deps.config, id, deps.queuedWindowMs)
    if (view.kind === 'duplicate') {
      const original = await findRecordDetail(deps.pool, view.original_id)
      return {
        kind: 'duplicate',
        id: view.id,
        original_id: view.original_id,
        received_at: view.received_at,
        original: original ? await operatorRecord(deps, original, null) : null,
      }
    }
    if (view.kind === 'waiting') {
      const holderId = await findPlaceHolder(deps.pool, view.id)
      const holder = holderId ? await findRecordDetail(deps.pool, holderId) : null
      return {
        kind: 'waiting',
        id: view.id,
        received_at: view.received_at,
        holder: holder ? await operatorRecord(deps, holder, null) : null,
      }
    }
    if (view.kind === 'queued') return { kind: 'queued', id: view.id, received_at: view.received_at }
    return { kind: 'not_found', by: 'id' }
  }
  if (/^[0-9]{10}$/.test(q)) {
    const nid = checkNationalId(q)
    if (!nid.ok)
      return { kind: 'invalid', message: 'This is not a valid national id (its check digit does not match).' }
    const rows = await findRecordsByNationalIdIndex(deps.pool, deps.sealer.blindIndex(nid.value))
    if (rows.length === 0) return { kind: 'not_found', by: 'national_id' }
    return {
      kind: 'records',
      by: 'national_id',
      records: await Promise.all(rows.map((r) => operatorRecord(deps, r, nid.value))),
    }
  }
  return { kind: 'invalid', message: 'Enter a registration id (a UUID) or a 10-digit national id.' }
}
