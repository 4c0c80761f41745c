import { toAsciiDigits } from './digits.js'

export type NationalIdRule = 'format' | 'same_digits' | 'checksum'

/**
 * Iranian national id (کد ملی): 10 digits, the last one a check digit.
 * s = Σ d[i]·(10−i) for i = 0…8, r = s mod 11; valid when check = r (r < 2) or check = 11 − r (r ≥ 2).
 * Codes of one repeated digit (0000000000, 1111111111, …) pass the arithmetic but are never issued:
 * refused by policy.
 */
export function checkNationalId(
  raw: string,
): { ok: true; value: string } | { ok: false; rule: NationalIdRule } {
  const value = toAsciiDigits(raw)
  if (!/^[0-9]{10}$/.test(value)) return { ok: false, rule: 'format' }
  if (/^(\d)\1{9}$/.test(value)) return { ok: false, rule: 'same_digits' }
  let sum = 0
  for (let i = 0; i < 9; i++) sum += (value.charCodeAt(i) - 48) * (10 - i)
  const r = sum % 11
  const check = value.charCodeAt(9) - 48
  const expected = r < 2 ? r : 11 - r
  return check === expected ? { ok: true, value } : { ok: false, rule: 'checksum' }
}

/** Completes 9 digits with the check digit that makes them a valid national id (tests, simulator, load). */
export function withCheckDigit(nineDigits: string): string {
  let sum = 0
  for (let i = 0; i < 9; i++) sum += (nineDigits.charCodeAt(i) - 48) * (10 - i)
  const r = sum % 11
  return nineDigits + String(r < 2 ? r : 11 - r)
}
