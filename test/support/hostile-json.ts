import fc from 'fast-check'
import { withCheckDigit } from '../../src/domain/national-id.js'

/**
 * Arbitraries for hostile input: JSON built as text (so it can hold what `JSON.stringify` never
 * writes: duplicate keys, `__proto__` as an own key, `\u005f_proto__` spellings, numbers like
 * 1e400), registrations that are valid, almost valid or not at all, and bodies broken below JSON
 * (invalid UTF-8, BOM, truncation) or above it (content types).
 */

/** A JSON document as a tree whose leaves are JSON text; object keys are JSON text too. */
export type J = { lit: string } | { arr: J[] } | { obj: [string, J][] }

export const lit = (v: unknown): J => ({ lit: JSON.stringify(v) })
export const key = (k: string): string => JSON.stringify(k)

export function jsonText(j: J): string {
  if ('lit' in j) return j.lit
  if ('arr' in j) return `[${j.arr.map(jsonText).join(',')}]`
  return `{${j.obj.map(([k, v]) => `${k}:${jsonText(v)}`).join(',')}}`
}

export const FIELDS = ['campaign', 'national_id', 'mobile', 'first_name', 'last_name', 'birth_date'] as const
export type Field = (typeof FIELDS)[number]
/** The campaigns of the fuzz configuration that are open now. */
export const OPEN_CAMPAIGNS = ['demo', 'nocheck'] as const

const PERSIAN = '۰۱۲۳۴۵۶۷۸۹'
const ARABIC = '٠١٢٣٤٥٦٧٨٩'
export type DigitScript = 'ascii' | 'persian' | 'arabic'

/** Writes the ASCII digits of `s` in the scripts given, one per digit, cycling. */
export function spellDigits(s: string, scripts: readonly DigitScript[]): string {
  if (scripts.length === 0) return s
  let i = 0
  return s.replace(/[0-9]/g, (d) => {
    const script = scripts[i++ % scripts.length]
    return script === 'persian' ? PERSIAN[Number(d)]! : script === 'arabic' ? ARABIC[Number(d)]! : d
  })
}
const digitScripts = fc.array(fc.constantFrom<DigitScript>('ascii', 'persian', 'arabic'), { maxLength: 4 })

// Characters that have broken parsers, databases and displays: controls, NUL, bidi overrides and
// isolates, zero-width and joiners, BOM, non-characters, line separators, combining marks,
// Arabic letters Persian spells differently, digits of three scripts, JSON and path syntax.
const NASTY = [
  '\u0000',
  '\u0007',
  '\u001b',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u009f',
  '\u00a0',
  '\u00ad',
  '\u034f',
  '\u061c',
  '\u200b',
  '\u200c',
  '\u200d',
  '\u200e',
  '\u200f',
  '\u202a',
  '\u202b',
  '\u202c',
  '\u202d',
  '\u202e',
  '\u2028',
  '\u2029',
  '\u2060',
  '\u2066',
  '\u2067',
  '\u2068',
  '\u2069',
  '\u3000',
  '\ufeff',
  '\ufffd',
  '\ufffe',
  '\uffff',
  '\u0301',
  '😀',
  '👩‍👩‍👧',
  '\t',
  '\n',
  '\r',
  ' ',
  '۰',
  '۹',
  '٠',
  '٩',
  '0',
  '9',
  'ي',
  'ك',
  'ى',
  'ی',
  'ک',
  '-',
  '+',
  '.',
  "'",
  '"',
  '\\',
  '/',
  '~',
  '[',
  'e',
]
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))
const nastyChar = fc.oneof(fc.constantFrom(...NASTY), loneSurrogate)

/** Numbers written as strings, and strings that look like numbers to someone. */
const numberish = fc.oneof(
  fc.integer().map(String),
  fc.double().map(String),
  fc.constantFrom(
    '1e400',
    '-0',
    'NaN',
    'Infinity',
    '0x10',
    '1_000',
    '۱۲۳',
    '١٢٣',
    '0499370899 ',
    '٠٩١٢١٢٣٤٥٦٧',
  ),
)

export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 4, arbitrary: fc.array(nastyChar, { minLength: 1, maxLength: 6 }).map((a) => a.join('')) },
  { weight: 2, arbitrary: numberish },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 50, max: 20_000 }), fc.constantFrom('x', 'ا', '😀', 'a\u0301', '۱'))
      .map(([n, c]) => c.repeat(n)),
  },
)

/** JSON numbers, including those JavaScript cannot hold (1e400 → Infinity, 2^64 → rounded). */
const numberText = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom('1e400', '-1e400', '-0', '1E-400', '0.1e1', '1.0', '-0.0'),
)

export const keyText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .constantFrom(
        ...FIELDS,
        'attributes',
        '__proto__',
        'constructor',
        'prototype',
        'toString',
        'hasOwnProperty',
        'records',
        '(body)',
        '',
        'a.b',
        'a/b',
        'a~b',
        'a~1b',
        '["x"]',
        'national_id ',
        'NATIONAL_ID',
      )
      .map(key),
  },
  // Escaped spellings of the same keys: JSON.parse makes them `__proto__` and `constructor` again.
  { weight: 1, arbitrary: fc.constantFrom('"\\u005f_proto__"', '"__pr\\u006fto__"', '"\\u0063onstructor"') },
  { weight: 2, arbitrary: nastyString.map(key) },
)

const scalar: fc.Arbitrary<J> = fc.oneof(
  numberText.map((t) => ({ lit: t })),
  fc.constantFrom<J>({ lit: 'true' }, { lit: 'false' }, { lit: 'null' }),
  nastyString.map(lit),
)

/** Deeply nested documents, written as text (depth in the thousands). */
const deep: fc.Arbitrary<J> = fc
  .tuple(
    fc.integer({ min: 10, max: 6000 }),
    fc.constantFrom(['[', ']'], ['{"a":', '}'], ['{"__proto__":', '}'], ['{"constructor":', '}']),
  )
  .map(([n, [open, close]]) => ({ lit: `${open!.repeat(n)}1${close!.repeat(n)}` }))

export const jsonValue: fc.Arbitrary<J> = fc.letrec<{ v: J }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 4, arbitrary: scalar },
    { weight: 1, arbitrary: fc.array(tie('v'), { maxLength: 4 }).map((arr) => ({ arr })) },
    { weight: 1, arbitrary: fc.array(fc.tuple(keyText, tie('v')), { maxLength: 4 }).map((obj) => ({ obj })) },
    { weight: 1, arbitrary: deep },
  ),
})).v

// ---- registrations -------------------------------------------------------------------------

const NAMES = [
  'علی',
  'رضایی',
  'محمدی\u200cنژاد',
  'علي', // Arabic yeh
  'كريم', // Arabic kaf
  'مصطفى',
  ' فاطمه  زهرا ',
  'Ali',
  "O'Brien",
  'Jean-Luc',
  'Zoë',
  'Jose\u0301', // NFD
  'Ægir',
  'Łukasz',
  'Σωκράτης',
]

export const validNationalId = fc
  .stringMatching(/^[0-9]{9}$/)
  .map(withCheckDigit)
  .filter((id) => !/^(\d)\1{9}$/.test(id))

export const validMobile = fc
  .tuple(fc.stringMatching(/^9[0-9]{9}$/), fc.constantFrom('0', '+98', '98', '0098'), fc.boolean())
  .map(([m, prefix, spaced]) =>
    spaced ? `${prefix}${m.slice(0, 3)} ${m.slice(3, 6)}-${m.slice(6)}` : prefix + m,
  )

const DAY = 86_400_000
export const validBirthDate = fc
  .integer({ min: Date.UTC(1900, 0, 1) / DAY, max: Math.floor(Date.now() / DAY) - 2 })
  .map((d) => new Date(d * DAY).toISOString().slice(0, 10))

const attributeValue: fc.Arbitrary<J> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }).map(lit) },
  { weight: 2, arbitrary: fc.integer().map(lit) },
  { weight: 2, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map(lit) },
  { weight: 1, arbitrary: fc.boolean().map(lit) },
  { weight: 1, arbitrary: fc.constant(lit(null)) },
  // Now and then a value no valid registration holds: numbers JavaScript cannot represent, text
  // PostgreSQL cannot store (NUL, lone surrogates).
  { weight: 1, arbitrary: numberText.map((t): J => ({ lit: t })) },
  { weight: 1, arbitrary: nastyString.map(lit) },
)
export const validAttributes = fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,39}$/), attributeValue, {
  maxKeys: 20,
})

/** A registration meant to be valid, spelled the many ways people type it. */
export const validRegistration = fc
  .record({
    campaign: fc.constantFrom(...OPEN_CAMPAIGNS),
    national_id: fc.tuple(validNationalId, digitScripts, fc.constantFrom('', ' ', '\u00a0')),
    mobile: fc.tuple(validMobile, digitScripts),
    first_name: fc.constantFrom(...NAMES),
    last_name: fc.constantFrom(...NAMES),
    birth_date: fc.tuple(validBirthDate, digitScripts),
    attributes: fc.option(validAttributes, { nil: undefined }),
  })
  .map((r) => {
    const entries: [string, J][] = [
      [key('campaign'), lit(r.campaign)],
      [key('national_id'), lit(r.national_id[2] + spellDigits(r.national_id[0], r.national_id[1]))],
      [key('mobile'), lit(spellDigits(r.mobile[0], r.mobile[1]))],
      [key('first_name'), lit(r.first_name)],
      [key('last_name'), lit(r.last_name)],
      [key('birth_date'), lit(spellDigits(r.birth_date[0], r.birth_date[1]))],
    ]
    if (r.attributes)
      entries.push([key('attributes'), { obj: Object.entries(r.attributes).map(([k, v]) => [key(k), v]) }])
    return entries
  })

type Mutation =
  | { op: 'set'; field: string; value: J }
  | { op: 'splice'; field: Field; insert: string; at: number }
  | { op: 'delete'; field: string }
  | { op: 'add'; key: string; value: J }
  | { op: 'attributes'; value: J }
  | { op: 'nest-forbidden'; key: string }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constant('set' as const),
    field: fc.constantFrom(...FIELDS, 'attributes'),
    value: jsonValue,
  }),
  fc.record({
    op: fc.constant('splice' as const),
    field: fc.constantFrom(...FIELDS),
    insert: nastyString,
    at: fc.nat(),
  }),
  fc.record({ op: fc.constant('delete' as const), field: fc.constantFrom(...FIELDS) }),
  fc.record({ op: fc.constant('add' as const), key: keyText, value: jsonValue }),
  fc.record({ op: fc.constant('attributes' as const), value: jsonValue }),
  fc.record({
    op: fc.constant('nest-forbidden' as const),
    key: fc.constantFrom('"__proto__"', '"\\u005f_proto__"', '"constructor"', '"prototype"'),
  }),
)

function applyMutation(entries: [string, J][], m: Mutation): [string, J][] {
  const at = (field: string) => entries.findIndex(([k]) => k === key(field))
  switch (m.op) {
    case 'set': {
      const i = at(m.field)
      const next = entries.slice()
      if (i >= 0) next[i] = [key(m.field), m.value]
      else next.push([key(m.field), m.value])
      return next
    }
    case 'splice': {
      const i = at(m.field)
      const current = i >= 0 ? entries[i]![1] : null
      if (!current || !('lit' in current)) return entries
      const s = JSON.parse(current.lit)
      if (typeof s !== 'string') return entries
      const pos = m.at % (s.length + 1)
      const next = entries.slice()
      next[i] = [key(m.field), lit(s.slice(0, pos) + m.insert + s.slice(pos))]
      return next
    }
    case 'delete':
      return entries.filter(([k]) => k !== key(m.field))
    case 'add':
      return [...entries, [m.key, m.value]]
    case 'attributes':
      return [...entries.filter(([k]) => k !== key('attributes')), [key('attributes'), m.value]]
    case 'nest-forbidden': {
      // `{"constructor": {"prototype": …}}` or `{"__proto__": …}` inside attributes.
      const inner: J = m.key.includes('constructor')
        ? { obj: [[key('prototype'), { obj: [] }]] }
        : { obj: [] }
      return [
        ...entries.filter(([k]) => k !== key('attributes')),
        [key('attributes'), { obj: [[m.key, inner]] }],
      ]
    }
  }
}

/** A registration: valid, or valid then broken in one to four ways. Entries keep JSON text. */
export const registrationEntries: fc.Arbitrary<[string, J][]> = fc
  .tuple(validRegistration, fc.array(mutation, { maxLength: 4 }), fc.boolean())
  .map(([entries, mutations, shuffle]) => {
    let e = entries
    for (const m of mutations) e = applyMutation(e, m)
    return shuffle ? [...e.slice(1), ...e.slice(0, 1)] : e
  })

export const registrationJ: fc.Arbitrary<J> = fc.oneof(
  { weight: 8, arbitrary: registrationEntries.map((obj) => ({ obj })) },
  { weight: 1, arbitrary: registrationEntries.map((obj) => ({ arr: [{ obj }] })) }, // an array where an object goes
  { weight: 2, arbitrary: jsonValue }, // anything at all
)

// ---- bodies below and above JSON ------------------------------------------------------------

const INVALID_UTF8: readonly number[][] = [
  [0xff],
  [0xc0, 0xaf], // overlong "/"
  [0xe0, 0x80, 0xaf], // overlong "/"
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate encoded as UTF-8 (CESU-8)
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  [0xc3], // truncated
  [0xe2, 0x82], // truncated
  [0x80], // a lone continuation byte
  [0xfe, 0xff],
]

export type BodyDamage =
  | { kind: 'none' }
  | { kind: 'invalid-utf8'; bytes: number[]; at: number }
  | { kind: 'bom' }
  | { kind: 'truncate'; at: number }
  | { kind: 'trailing'; text: string }
  | { kind: 'pad'; bytes: number }
  | { kind: 'empty' }

export const bodyDamage: fc.Arbitrary<BodyDamage> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('invalid-utf8' as const),
      bytes: fc.constantFrom(...INVALID_UTF8),
      at: fc.nat(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'bom' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('trailing' as const),
      text: fc.constantFrom('x', '}', ',', ' {}', '\u0000'),
    }),
  },
  // Whitespace to push a valid document past a body limit.
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('pad' as const), bytes: fc.integer({ min: 1, max: 300_000 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const }) },
)

export function damage(text: string, d: BodyDamage): Buffer {
  const buf = Buffer.from(text, 'utf8')
  switch (d.kind) {
    case 'none':
      return buf
    case 'invalid-utf8': {
      const at = d.at % (buf.length + 1)
      return Buffer.concat([buf.subarray(0, at), Buffer.from(d.bytes), buf.subarray(at)])
    }
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), buf])
    case 'truncate':
      return buf.subarray(0, d.at % Math.max(1, buf.length))
    case 'trailing':
      return Buffer.concat([buf, Buffer.from(d.text)])
    case 'pad':
      return Buffer.concat([buf, Buffer.alloc(d.bytes, 0x20)])
    case 'empty':
      return Buffer.alloc(0)
  }
}

/** Content types a JSON API must take … */
export const JSON_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'application/json;charset=UTF-8',
]
/** … and ones it must refuse with 415 (no header at all among them). */
export const OTHER_TYPES = [
  null,
  '',
  'text/plain',
  'text/json',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/jsonx',
  'application/vnd.api+json',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
]
export const contentType: fc.Arbitrary<string | null> = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...JSON_TYPES) },
  { weight: 1, arbitrary: fc.constantFrom(...OTHER_TYPES) },
)
