import pino from 'pino'

export type Logger = pino.Logger

/**
 * Personal data never reaches a log line. Known fields are masked by name (pino redact), and
 * every string that is logged is scrubbed of anything shaped like a national id (10 digits) or an
 * Iranian mobile number, as a net for the cases no one thought of (an error message quoting input).
 * The registration id (a UUID) is the correlation key and is kept whole.
 */
const PERSONAL_SHAPES =
  /(?<![0-9A-Za-z])(?:\+?98|0098|0)?9[0-9]{9}(?![0-9A-Za-z])|(?<![0-9A-Za-z])[0-9]{10}(?![0-9A-Za-z])/g
const NON_ASCII_DIGITS = /[\u0660-\u0669\u06F0-\u06F9]{6,}/g

export function maskDigits(value: string): string {
  if (value.length <= 4) return '*'.repeat(value.length)
  return value.slice(0, 2) + '*'.repeat(value.length - 4) + value.slice(-2)
}

export function scrub(text: string): string {
  return text.replace(PERSONAL_SHAPES, maskDigits).replace(NON_ASCII_DIGITS, maskDigits)
}

function scrubDeep(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrub(value)
  if (depth > 4 || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, depth + 1))
  if (value instanceof Error)
    return { type: value.name, message: scrub(value.message), stack: scrub(value.stack ?? '') }
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = scrubDeep(v, depth + 1)
  return out
}

const REDACT_PATHS = [
  'national_id',
  'mobile',
  '*.national_id',
  '*.mobile',
  '*.*.national_id',
  '*.*.mobile',
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
        log: (obj) => scrubDeep(obj, 0) as Record<string, unknown>,
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
