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

/**
 * Why a "no", in realistic shares: a second hash of the same input picks the reason, so the
 * answer stays deterministic and the share of "no" stays what it was. Reason texts are what a
 * provider would say (and what Sabt treats as personal data).
 */
export const REASONS: Record<ProviderName, readonly { code: string; share: number; text: string }[]> = {
  identity: [
    { code: 'not_found', share: 40, text: 'No person with this national id in the civil registry' },
    { code: 'name_mismatch', share: 35, text: 'The name does not match the civil registry' },
    { code: 'birth_date_mismatch', share: 20, text: 'The birth date does not match the civil registry' },
    { code: 'deceased', share: 5, text: 'The civil registry records this person as deceased' },
  ],
  mobile: [
    { code: 'not_owner', share: 80, text: 'This mobile number is registered to another person' },
    { code: 'number_inactive', share: 20, text: 'This mobile number is not in service' },
  ],
  eligibility: [
    { code: 'already_served', share: 70, text: 'Already served in a previous campaign' },
    { code: 'age_limit', share: 30, text: 'Outside the age limit of this campaign' },
  ],
}

export function reasonFor(p: ProviderName, ...parts: string[]): { code: string; text: string } {
  let b = bucket('reason', p, ...parts)
  for (const r of REASONS[p]) {
    if (b < r.share) return { code: r.code, text: r.text }
    b -= r.share
  }
  return REASONS[p][0]!
}

export function identityReason(q: IdentityQuestion): { code: string; text: string } {
  return reasonFor('identity', q.national_id, q.first_name, q.last_name, q.birth_date)
}
export function mobileReason(q: MobileQuestion): { code: string; text: string } {
  return reasonFor('mobile', q.national_id, q.mobile)
}
export function eligibilityReason(q: EligibilityQuestion): { code: string; text: string } {
  return reasonFor('eligibility', q.national_id, q.campaign)
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
