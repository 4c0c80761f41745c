import {
  invalidNationalIdSequences,
  validateNationalIdChecksum,
  verifyIranianNationalId,
} from '@persian-tools/persian-tools'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkNationalId, withCheckDigit } from './national-id.js'

describe('national id', () => {
  it.each(['0499370899', '0790419904', '0084575948', '0010350829', '0013542419', '4608968882'])(
    'accepts the real, valid id %s',
    (id) => {
      expect(checkNationalId(id)).toEqual({ ok: true, value: id })
      expect(verifyIranianNationalId(id)).toBe(true)
    },
  )

  it.each([
    ['0499370898', 'checksum'],
    ['4608968881', 'checksum'],
    ['1111111111', 'same_digits'],
    ['0000000000', 'same_digits'],
    ['049937089', 'format'],
    ['04993708990', 'format'],
    ['04993708a9', 'format'],
    ['', 'format'],
  ])('refuses %s (%s)', (id, rule) => {
    expect(checkNationalId(id)).toEqual({ ok: false, rule })
  })

  it('accepts Persian and Arabic-Indic digits, normalised to ASCII', () => {
    expect(checkNationalId('۰۴۹۹۳۷۰۸۹۹')).toEqual({ ok: true, value: '0499370899' })
    expect(checkNationalId('٠٤٩٩٣٧٠٨٩٩')).toEqual({ ok: true, value: '0499370899' })
    expect(checkNationalId('۰۴۹۹37۰899')).toEqual({ ok: true, value: '0499370899' })
  })

  // Our policy is the check digit plus "not one repeated digit"; the oracle's city-prefix table is
  // a policy we chose not to enforce (new prefixes appear; a wrong table would refuse real people).
  const oracle = (id: string) => validateNationalIdChecksum(id) && !invalidNationalIdSequences.has(id)

  it('agrees with an independent implementation on every 10-digit string it is given', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{10}$/), (id) => {
        expect(checkNationalId(id).ok).toBe(oracle(id))
      }),
      { seed: 42, numRuns: 5000 },
    )
  })

  it('withCheckDigit completes any 9 digits into a valid id', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{9}$/), (nine) => {
        const id = withCheckDigit(nine)
        if (/^(\d)\1{9}$/.test(id)) return
        expect(checkNationalId(id).ok).toBe(true)
        expect(oracle(id)).toBe(true)
      }),
      { seed: 7, numRuns: 2000 },
    )
  })
})
