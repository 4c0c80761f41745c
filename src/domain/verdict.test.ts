import { describe, expect, it } from 'vitest'
import { decideStatus, NoRequiredChecksError, type Outcome, unlockedBy } from './verdict.js'

const required = [
  { name: 'identity', after: [] },
  { name: 'mobile', after: ['identity'] },
  { name: 'eligibility', after: [] },
]
const o = (entries: [string, Outcome | null][]) => new Map(entries)

describe('verdict', () => {
  it('accepts only when every required check passed', () => {
    expect(
      decideStatus(
        required,
        o([
          ['identity', 'passed'],
          ['mobile', 'passed'],
          ['eligibility', 'passed'],
        ]),
      ),
    ).toBe('accepted')
    expect(
      decideStatus(
        required,
        o([
          ['identity', 'passed'],
          ['eligibility', 'passed'],
        ]),
      ),
    ).toBe('verifying')
    expect(decideStatus(required, o([]))).toBe('verifying')
  })

  it('rejects as soon as any check failed, even with others pending or dead', () => {
    expect(decideStatus(required, o([['identity', 'failed']]))).toBe('rejected')
    expect(
      decideStatus(
        required,
        o([
          ['identity', 'passed'],
          ['mobile', 'error'],
          ['eligibility', 'failed'],
        ]),
      ),
    ).toBe('rejected')
  })

  it('is failed while a check is dead-lettered and none failed', () => {
    expect(
      decideStatus(
        required,
        o([
          ['identity', 'passed'],
          ['mobile', 'error'],
        ]),
      ),
    ).toBe('failed')
  })

  it('never decides from an empty list of required checks (a campaign the configuration does not know)', () => {
    expect(() => decideStatus([], o([['identity', 'error']]))).toThrow(NoRequiredChecksError)
    expect(() => decideStatus([], o([]))).toThrow(NoRequiredChecksError)
  })

  it('unlocks a waiting check only when all it waits on passed', () => {
    expect(unlockedBy('identity', required, o([['identity', 'passed']]))).toEqual(['mobile'])
    expect(
      unlockedBy(
        'identity',
        required,
        o([
          ['identity', 'passed'],
          ['mobile', 'passed'],
        ]),
      ),
    ).toEqual([])
    expect(unlockedBy('eligibility', required, o([['eligibility', 'passed']]))).toEqual([])
  })
})
