import { toAsciiDigits, toPersianLetters } from './digits.js'
import { normaliseMobile } from './mobile.js'
import { checkNationalId } from './national-id.js'

/** Attribute values are scalars: `attributes` is a flat, bounded bag of extra answers. */
export type AttributeValue = string | number | boolean | null

/** A registration as submitted (after the JSON schema has checked types and sizes). */
export interface RegistrationInput {
  campaign: string
  national_id: string
  mobile: string
  first_name: string
  last_name: string
  birth_date: string
  attributes?: Record<string, AttributeValue> | undefined
}

/** A registration after normalisation: ASCII digits, `09…` mobile, Persian letters in names. */
export interface Registration {
  campaign: string
  national_id: string
  mobile: string
  first_name: string
  last_name: string
  birth_date: string
  attributes: Record<string, AttributeValue> | null
}

/** One broken rule, named so a client can show it next to the field. */
export interface FieldError {
  field: string
  rule: string
  message: string
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /[\u0000-\u001F\u007F-\u009F]/
const LONE_SURROGATE = /\p{Cs}/u
// Bidi embeddings/overrides/isolates can disguise what a name displays as; marks (LRM/RLM) are harmless.
const BIDI_CONTROL = /[\u202A-\u202E\u2066-\u2069]/
// Letters and combining marks of any script, with the joiners Persian uses (ZWNJ) and name punctuation.
const NAME = /^[\p{L}\p{M}](?:[\p{L}\p{M}\u200C\u200F\u200E' .-]*[\p{L}\p{M}.])?$/u
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
const EARLIEST_BIRTH = Date.UTC(1900, 0, 1)

export const NAME_MAX = 64

/**
 * True when no character of `value` could break a rule of checkText: one pass over the code
 * units, printable ASCII skipped at once (nearly every submission is only that, or Persian
 * letters). Anything suspicious goes to the three regexes, which name the rule.
 */
function plainText(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c >= 0x20 && c < 0x7f) continue
    if (c < 0x20 || c <= 0x9f) return false // C0, DEL, C1 controls
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = value.charCodeAt(i + 1) // NaN past the end
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return false // a lone surrogate
      i++ // a well-formed pair (an emoji, a rare letter)
      continue
    }
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) return false // bidi controls
  }
  return true
}

function checkText(field: string, value: string, errors: FieldError[]): boolean {
  if (plainText(value)) return true
  if (CONTROL.test(value)) {
    errors.push({ field, rule: 'control_characters', message: 'must not contain control characters' })
    return false
  }
  if (LONE_SURROGATE.test(value)) {
    errors.push({ field, rule: 'invalid_unicode', message: 'must be valid Unicode text' })
    return false
  }
  if (BIDI_CONTROL.test(value)) {
    errors.push({
      field,
      rule: 'bidi_control',
      message: 'must not contain bidirectional override characters',
    })
    return false
  }
  return true
}

function normaliseName(field: string, raw: string, errors: FieldError[]): string {
  if (!checkText(field, raw, errors)) return raw
  const value = toPersianLetters(raw.trim().replace(/\s+/g, ' ').normalize('NFC'))
  if (value.length === 0) errors.push({ field, rule: 'required', message: 'must not be empty' })
  else if (value.length > NAME_MAX)
    errors.push({ field, rule: 'max_length', message: `must be at most ${NAME_MAX} characters` })
  else if (!NAME.test(value))
    errors.push({ field, rule: 'letters', message: 'must be letters (with spaces, hyphens, apostrophes)' })
  return value
}

function checkBirthDate(raw: string, today: number, errors: FieldError[]): string {
  const value = toAsciiDigits(raw.trim())
  const m = DATE.exec(value)
  if (!m) {
    errors.push({ field: 'birth_date', rule: 'format', message: 'must be an ISO date YYYY-MM-DD' })
    return value
  }
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const t = Date.UTC(y, mo - 1, d)
  const back = new Date(t)
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) {
    errors.push({ field: 'birth_date', rule: 'calendar', message: 'must be a real calendar date' })
  } else if (t >= today) {
    errors.push({ field: 'birth_date', rule: 'past', message: 'must be in the past' })
  } else if (t < EARLIEST_BIRTH) {
    errors.push({ field: 'birth_date', rule: 'range', message: 'must be on or after 1900-01-01' })
  }
  return value
}

/**
 * Normalises a schema-valid registration and applies the rules a JSON schema cannot express.
 * Returns every broken rule at once, so a form can show them all.
 */
export function normaliseRegistration(
  input: RegistrationInput,
  now: number = Date.now(),
): { ok: true; value: Registration } | { ok: false; errors: FieldError[] } {
  const errors: FieldError[] = []

  let nationalId = input.national_id
  if (checkText('national_id', nationalId, errors)) {
    const nid = checkNationalId(nationalId.trim())
    if (nid.ok) nationalId = nid.value
    else
      errors.push({
        field: 'national_id',
        rule: nid.rule,
        message:
          nid.rule === 'format'
            ? 'must be 10 digits'
            : nid.rule === 'same_digits'
              ? 'must not be one repeated digit'
              : 'check digit does not match',
      })
  }

  let mobile = input.mobile
  if (checkText('mobile', mobile, errors)) {
    const mob = normaliseMobile(mobile.trim())
    if (mob.ok) mobile = mob.value
    else
      errors.push({
        field: 'mobile',
        rule: 'format',
        message: 'must be an Iranian mobile number (09XXXXXXXXX)',
      })
  }

  const firstName = normaliseName('first_name', input.first_name, errors)
  const lastName = normaliseName('last_name', input.last_name, errors)
  const startOfToday = now - (now % 86_400_000) // UTC; a birth date must be before today
  const birthDate = checkBirthDate(input.birth_date, startOfToday, errors)

  let attributes: Record<string, AttributeValue> | null = null
  if (input.attributes !== undefined) {
    attributes = {}
    for (const [key, v] of Object.entries(input.attributes)) {
      if (typeof v === 'string' && !checkText(`attributes.${key}`, v, errors)) continue
      attributes[key] = v
    }
  }

  if (errors.length > 0) return { ok: false, errors }
  return {
    ok: true,
    value: {
      campaign: input.campaign,
      national_id: nationalId,
      mobile,
      first_name: firstName,
      last_name: lastName,
      birth_date: birthDate,
      attributes,
    },
  }
}
