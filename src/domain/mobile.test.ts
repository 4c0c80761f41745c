import { phoneNumberNormalizer } from '@persian-tools/persian-tools'
import { describe, expect, it } from 'vitest'
import { normaliseMobile } from './mobile.js'

describe('mobile', () => {
  it.each([
    ['09121234567', '09121234567'],
    ['+989121234567', '09121234567'],
    ['989121234567', '09121234567'],
    ['00989121234567', '09121234567'],
    ['0912 123 4567', '09121234567'],
    ['0912-123-4567', '09121234567'],
    ['۰۹۱۲۱۲۳۴۵۶۷', '09121234567'],
    ['+۹۸۹۳۵۱۲۳۴۵۶۷', '09351234567'],
    ['٠٩٠١١٢٣٤٥٦٧', '09011234567'],
  ])('normalises %s to %s', (raw, expected) => {
    expect(normaliseMobile(raw)).toEqual({ ok: true, value: expected })
  })

  it('agrees with an independent normaliser on the accepted spellings', () => {
    for (const raw of ['09121234567', '+989121234567', '989121234567', '00989121234567'])
      expect(normaliseMobile(raw)).toEqual({ ok: true, value: phoneNumberNormalizer(raw, '0') })
  })

  it.each([
    '0912123456', // 10 digits
    '091212345678', // 12 digits
    '02112345678', // a Tehran landline
    '+9891212345678',
    '+19121234567',
    '9121234567', // no prefix
    '0912123456a',
    '',
    '+98 21 1234 5678',
  ])('refuses %s', (raw) => {
    expect(normaliseMobile(raw)).toEqual({ ok: false, rule: 'format' })
  })
})
