import pino from 'pino'

export type Logger = pino.Logger

/**
 * Personal data never reaches a log line. Known fields are masked by name (pino redact, and at any
 * depth below), and every string that is logged is scrubbed of anything shaped like a national id
 * or a mobile number, as a net for the cases no one thought of (an error message quoting input):
 * a run of digits — ASCII, Persian (۰-۹), Arabic-Indic (٠-٩) or full-width (０-９), mixed at will —
 * that separators (spaces, dashes, dots, brackets) may split, with ten digits or more in all, is
 * masked but for its first two and last two digits. That covers a national id (10 digits) and a
 * mobile in every written form (09121234567, 0912 123 4567, +98 912-123-4567, 0098…), and masks
 * a little more than it must (any long number in a message) rather than less. The registration id
 * (a UUID) is the correlation key and is kept whole.
 */
const DIGIT = String.raw`[0-9\u0660-\u0669\u06F0-\u06F9\uFF10-\uFF19]`
const SEPARATOR = String.raw`[\s\-.\u00A0\u2009\u202F\u2010-\u2015\u2212_()\u200C-\u200F\uFF0D\uFF0E]`
const NUMBER_RUN = new RegExp(`${DIGIT}+(?:${SEPARATOR}{1,3}${DIGIT}+)*`, 'g')
const ONE_DIGIT = new RegExp(DIGIT, 'g')
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi
const PERSONAL_KEYS = /^(national_?id|mobile|phone)$/i
/** A provider's own words about a person (a check's reason text): never written, at any depth. */
const WORDS_KEYS = /^reason_?text$/i

export function maskDigits(value: string): string {
  if (value.length <= 4) return '*'.repeat(value.length)
  return value.slice(0, 2) + '*'.repeat(value.length - 4) + value.slice(-2)
}

/** A run of ten digits or more: every digit but the first two and the last two becomes '*'. */
function maskRun(run: string): string {
  const count = run.match(ONE_DIGIT)?.length ?? 0
  if (count < 10) return run
  let seen = 0
  return run.replace(ONE_DIGIT, (d) => (seen++ < 2 || seen > count - 2 ? d : '*'))
}

function scrubPart(text: string): string {
  return text.replace(NUMBER_RUN, maskRun)
}

export function scrub(text: string): string {
  let out = ''
  let at = 0
  for (const m of text.matchAll(UUID)) {
    out += scrubPart(text.slice(at, m.index)) + m[0]
    at = m.index + m[0].length
  }
  return at === 0 ? scrubPart(text) : out + scrubPart(text.slice(at))
}

/** Deeper than this, what is left is logged as scrubbed JSON text: masked all the same, no recursion limit hit. */
const MAX_DEPTH = 64

function scrubDeep(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return scrub(value)
  if (value === null || typeof value !== 'object') return value
  if (seen.has(value)) return '[Circular]'
  if (depth > MAX_DEPTH) {
    try {
      return scrub(JSON.stringify(value) ?? '')
    } catch {
      return '[unserialisable]'
    }
  }
  seen.add(value)
  try {
    if (Array.isArray(value)) return value.map((v) => scrubDeep(v, depth + 1, seen))
    const out: Record<string, unknown> = {}
    if (value instanceof Error) {
      out.type = value.name
      out.message = scrub(value.message)
      out.stack = scrub(value.stack ?? '')
    }
    for (const [k, v] of Object.entries(value))
      out[k] =
        WORDS_KEYS.test(k) && v !== null && v !== undefined
          ? '[redacted]'
          : PERSONAL_KEYS.test(k) && v !== null && v !== undefined
            ? typeof v === 'string'
              ? maskDigits(v)
              : '[redacted]'
            : scrubDeep(v, depth + 1, seen)
    return out
  } finally {
    seen.delete(value)
  }
}

const REDACT_PATHS = [
  'national_id',
  'mobile',
  '*.national_id',
  '*.mobile',
  '*.*.national_id',
  '*.*.mobile',
  'reason_text',
  '*.reason_text',
  '*.*.reason_text',
  'req.body',
  'body',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
]

export function createLogger(
  opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      name: opts.name ?? 'sabt',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: (v) => (typeof v === 'string' ? maskDigits(v) : '[redacted]') },
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrubDeep(obj, 0, new WeakSet()) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++) {
            const a = args[i]
            if (typeof a === 'string') (args as unknown[])[i] = scrub(a)
          }
          return method.apply(this, args)
        },
      },
    },
    opts.destination,
  )
}
