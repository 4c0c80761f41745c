import { describe, expect, it } from 'vitest'
import { normaliseRegistration, type RegistrationInput } from './registration.js'

const NOW = Date.UTC(2026, 10, 25, 12, 0, 0)
const base: RegistrationInput = {
  campaign: 'demo',
  national_id: '۰۴۹۹۳۷۰۸۹۹',
  mobile: '+989121234567',
  first_name: ' علي  اكبر ',
  last_name: 'رضايي',
  birth_date: '۱۹۹۰-۰۳-۲۱',
}

function rules(input: Partial<RegistrationInput>): string[] {
  const r = normaliseRegistration({ ...base, ...input }, NOW)
  return r.ok ? [] : r.errors.map((e) => `${e.field}:${e.rule}`)
}

describe('registration normalisation', () => {
  it('normalises digits, mobile, names and keeps the rest', () => {
    const r = normaliseRegistration({ ...base, attributes: { city: 'تهران', seats: 2 } }, NOW)
    expect(r).toEqual({
      ok: true,
      value: {
        campaign: 'demo',
        national_id: '0499370899',
        mobile: '09121234567',
        first_name: 'علی اکبر',
        last_name: 'رضایی',
        birth_date: '1990-03-21',
        attributes: { city: 'تهران', seats: 2 },
      },
    })
  })

  it('keeps ZWNJ inside Persian names', () => {
    const r = normaliseRegistration({ ...base, last_name: 'محمدی‌نژاد' }, NOW)
    expect(r.ok && r.value.last_name).toBe('محمدی\u200cنژاد')
  })

  it('reports every broken rule at once, naming field and rule', () => {
    expect(
      rules({ national_id: '0499370898', mobile: '02112345678', first_name: 'A1', birth_date: '1990-02-30' }),
    ).toEqual(['national_id:checksum', 'mobile:format', 'first_name:letters', 'birth_date:calendar'])
  })

  it.each([
    ['2026-11-25', 'birth_date:past'], // today is not in the past
    ['2030-01-01', 'birth_date:past'],
    ['1899-12-31', 'birth_date:range'],
    ['1990-13-01', 'birth_date:calendar'],
    ['2023-02-29', 'birth_date:calendar'],
    ['1990/03/21', 'birth_date:format'],
    ['21-03-1990', 'birth_date:format'],
  ])('birth date %s → %s', (birth_date, rule) => {
    expect(rules({ birth_date })).toEqual([rule])
  })

  it('accepts a leap day and yesterday', () => {
    expect(rules({ birth_date: '2024-02-29' })).toEqual([])
    expect(rules({ birth_date: '2026-11-24' })).toEqual([])
  })

  it('refuses control and bidi-override characters and lone surrogates', () => {
    expect(rules({ first_name: 'Ali\u0000' })).toEqual(['first_name:control_characters'])
    expect(rules({ last_name: '\u202Eyeziar' })).toEqual(['last_name:bidi_control'])
    expect(rules({ first_name: 'Ali\uD800' })).toEqual(['first_name:invalid_unicode'])
    expect(rules({ attributes: { note: 'a\u0007b' } })).toEqual(['attributes.note:control_characters'])
    expect(rules({ attributes: { note: '\uDFFF' } })).toEqual(['attributes.note:invalid_unicode'])
  })

  it('finds each text rule exactly as the three regexes do, at every code unit that matters', () => {
    // The rules as first written (one regex each, in this order); checkText's one-pass scan must
    // name the same rule, or none, for any string.
    const reference = (v: string): string | null =>
      // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
      /[\u0000-\u001F\u007F-\u009F]/.test(v)
        ? 'control_characters'
        : /\p{Cs}/u.test(v)
          ? 'invalid_unicode'
          : /[\u202A-\u202E\u2066-\u2069]/.test(v)
            ? 'bidi_control'
            : null
    const edges = [
      0x00, 0x09, 0x1f, 0x20, 0x41, 0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0x06cc, 0x200c, 0x200f, 0x2029, 0x202a,
      0x202e, 0x202f, 0x2065, 0x2066, 0x2069, 0x206a, 0xd7ff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000, 0xfeff,
      0xffff,
    ]
    let seed = 7
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed
    }
    const strings = [...edges.map((c) => String.fromCharCode(c)), '\ud83d\ude00', 'a\ud83d', '\ude00b']
    for (let n = 0; n < 3000; n++) {
      let v = ''
      for (let k = 1 + (next() % 6); k > 0; k--) v += String.fromCharCode(edges[next() % edges.length]!)
      strings.push(v)
    }
    for (const v of strings) {
      const r = normaliseRegistration({ ...base, attributes: { note: v } }, NOW)
      const rule = r.ok ? null : (r.errors.find((e) => e.field === 'attributes.note')?.rule ?? null)
      expect([v, rule]).toEqual([v, reference(v)])
    }
  })

  it('refuses empty and over-long names', () => {
    expect(rules({ first_name: '   ' })).toEqual(['first_name:required'])
    expect(rules({ first_name: 'ا'.repeat(65) })).toEqual(['first_name:max_length'])
  })
})
