import { createHash } from 'node:crypto'

/**
 * The simulator's deterministic answers: derived from the input alone, so a test (or a benchmark)
 * knows the verdict Sabt must reach without asking. A fixed share of inputs fails each provider.
 */
export const PROVIDERS = ['identity', 'mobile', 'eligibility'] as const
export type ProviderName = (typeof PROVIDERS)[number]

export interface IdentityQuestion {
  national_id: string
  first_name: string
  last_name: string
  birth_date: string
}
export interface MobileQuestion {
  national_id: string
  mobile: string
}
export interface EligibilityQuestion {
  national_id: string
  campaign: string
}

/** Percent of inputs each provider answers "no" to (identity mismatch, not the owner, not eligible). */
export const DEFAULT_FAIL_PERCENT: Record<ProviderName, number> = { identity: 10, mobile: 10, eligibility: 5 }

function bucket(...parts: string[]): number {
  const h = createHash('sha256').update(parts.join('\u0000')).digest()
  return h.readUInt32BE(0) % 100
}

export function identityMatches(q: IdentityQuestion, failPercent = DEFAULT_FAIL_PERCENT.identity): boolean {
  return bucket('identity', q.national_id, q.first_name, q.last_name, q.birth_date) >= failPercent
}

export function mobileMatches(q: MobileQuestion, failPercent = DEFAULT_FAIL_PERCENT.mobile): boolean {
  return bucket('mobile', q.national_id, q.mobile) >= failPercent
}

export function isEligible(q: EligibilityQuestion, failPercent = DEFAULT_FAIL_PERCENT.eligibility): boolean {
  return bucket('eligibility', q.national_id, q.campaign) >= failPercent
}

/** What a campaign with checks identity → mobile, eligibility decides for one person. */
export function expectedVerdict(
  r: IdentityQuestion & MobileQuestion & EligibilityQuestion,
  checks: readonly ProviderName[] = PROVIDERS,
): 'accepted' | 'rejected' {
  const ok =
    (!checks.includes('identity') || identityMatches(r)) &&
    (!checks.includes('mobile') || mobileMatches(r)) &&
    (!checks.includes('eligibility') || isEligible(r))
  return ok ? 'accepted' : 'rejected'
}
