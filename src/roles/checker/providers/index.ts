/**
 * The check providers Sabt knows, in one explicit registry (no auto-discovery): how to build a
 * provider's request from a record, and how to read a pass or fail from its answer. Where each
 * provider lives, how fast it may be called and how patient to be are configuration
 * (config/sabt.yaml `checks:`), not code.
 */
export interface CheckSubject {
  id: string
  campaign: string
  national_id: string
  mobile: string
  first_name: string
  last_name: string
  birth_date: string
}

export type PersonalField = 'national_id' | 'mobile'

export interface Provider {
  name: string
  /** Sealed fields the request needs: the checker opens only these, only to call. */
  needs: readonly PersonalField[]
  /** Whether the provider honours an Idempotency-Key header (Sabt sends the registration id). */
  idempotencyKey: boolean
  buildRequest(s: CheckSubject): Record<string, unknown>
  /** A definite answer, or null when the answer cannot be read (a permanent failure). */
  readOutcome(body: unknown): { outcome: 'passed' | 'failed'; detail: Record<string, unknown> } | null
}

function field(body: unknown, name: string): unknown {
  return body !== null && typeof body === 'object' ? (body as Record<string, unknown>)[name] : undefined
}

const identity: Provider = {
  name: 'identity',
  needs: ['national_id'],
  idempotencyKey: true,
  buildRequest: (s) => ({
    national_id: s.national_id,
    first_name: s.first_name,
    last_name: s.last_name,
    birth_date: s.birth_date,
  }),
  readOutcome: (body) => {
    const m = field(body, 'match')
    return typeof m === 'boolean' ? { outcome: m ? 'passed' : 'failed', detail: { match: m } } : null
  },
}

const mobile: Provider = {
  name: 'mobile',
  needs: ['national_id', 'mobile'],
  idempotencyKey: true,
  buildRequest: (s) => ({ national_id: s.national_id, mobile: s.mobile }),
  readOutcome: (body) => {
    const m = field(body, 'match')
    return typeof m === 'boolean' ? { outcome: m ? 'passed' : 'failed', detail: { match: m } } : null
  },
}

const eligibility: Provider = {
  name: 'eligibility',
  needs: ['national_id'],
  idempotencyKey: true,
  buildRequest: (s) => ({ national_id: s.national_id, campaign: s.campaign }),
  readOutcome: (body) => {
    const e = field(body, 'eligible')
    return typeof e === 'boolean' ? { outcome: e ? 'passed' : 'failed', detail: { eligible: e } } : null
  },
}

export const PROVIDER_REGISTRY: ReadonlyMap<string, Provider> = new Map(
  [identity, mobile, eligibility].map((p) => [p.name, p]),
)
