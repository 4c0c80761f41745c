/**
 * Verdict rules, pure. A record's status follows its checks' outcomes:
 * - any check `failed`                 → `rejected` (final: a definite "no" is known)
 * - else any check `error` (dead letter) → `failed` (until the dead letter is replayed)
 * - else every required check `passed` → `accepted` (final)
 * - else                               → `verifying`
 *
 * A verdict is computed from a campaign's list of required checks and never from an empty one:
 * a campaign (or check) that a role's configuration does not know is not "no checks required".
 * A campaign that requires nothing is accepted when it is recorded; it never reaches these rules.
 */
export type Outcome = 'passed' | 'failed' | 'error'
export type RecordStatus = 'recorded' | 'verifying' | 'accepted' | 'rejected' | 'failed'

export interface RequiredCheck {
  name: string
  after: readonly string[]
}

/** A verdict asked for without a list of required checks: a configuration that does not know the campaign. */
export class NoRequiredChecksError extends Error {
  override name = 'NoRequiredChecksError'
  constructor() {
    super('no required checks given: a verdict is never decided from an empty list')
  }
}

export function decideStatus(
  required: readonly RequiredCheck[],
  outcomes: ReadonlyMap<string, Outcome | null>,
): RecordStatus {
  if (required.length === 0) throw new NoRequiredChecksError()
  let anyError = false
  let allPassed = true
  for (const c of required) {
    const o = outcomes.get(c.name) ?? null
    if (o === 'failed') return 'rejected'
    if (o === 'error') anyError = true
    if (o !== 'passed') allPassed = false
  }
  if (anyError) return 'failed'
  if (allPassed) return 'accepted'
  return 'verifying'
}

export function isFinal(status: string): boolean {
  return status === 'accepted' || status === 'rejected'
}

/** Checks that may run now that `justPassed` passed: every check they wait on has passed. */
export function unlockedBy(
  justPassed: string,
  required: readonly RequiredCheck[],
  outcomes: ReadonlyMap<string, Outcome | null>,
): string[] {
  return required
    .filter((c) => c.after.includes(justPassed))
    .filter((c) => c.after.every((dep) => outcomes.get(dep) === 'passed'))
    .filter((c) => (outcomes.get(c.name) ?? null) === null)
    .map((c) => c.name)
}
