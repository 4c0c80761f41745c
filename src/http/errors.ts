import type { FieldError } from '../domain/registration.js'

/**
 * Every error the HTTP API answers with, in one catalogue: a stable code, its HTTP status and a
 * message. The OpenAPI document lists this table, and a test keeps docs/api-errors.md in step.
 * The body of every error is JSON: `{ statusCode, code, message, errors?: [{ field, rule, message }] }`.
 */
export const ERRORS = {
  SABT_INVALID_JSON: { status: 400, message: 'The body is not valid JSON' },
  SABT_INVALID_ENCODING: { status: 400, message: 'The body is not valid UTF-8' },
  SABT_INVALID_ID: { status: 400, message: 'The id is not a registration id (a UUID)' },
  SABT_BAD_REQUEST: { status: 400, message: 'The request is malformed' },
  SABT_UNAUTHORIZED: { status: 401, message: 'Credentials are missing or wrong' },
  SABT_FORBIDDEN: {
    status: 403,
    message: 'Refused: a cookie-authenticated change must come from the dashboard itself',
  },
  SABT_NOT_FOUND: { status: 404, message: 'No such resource' },
  SABT_REQUEST_TIMEOUT: { status: 408, message: 'The request took too long to arrive' },
  SABT_BODY_TOO_LARGE: { status: 413, message: 'The body is larger than the limit' },
  SABT_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The body must be application/json' },
  SABT_VALIDATION: { status: 422, message: 'The body breaks one or more rules' },
  SABT_UNKNOWN_CAMPAIGN: { status: 422, message: 'No such campaign' },
  SABT_CAMPAIGN_NOT_OPEN: { status: 422, message: 'The campaign is not open for registration now' },
  SABT_CODE_INVALID: { status: 422, message: 'The code is wrong, used or expired' },
  SABT_PROOF_OF_WORK: { status: 403, message: 'A valid, unused proof-of-work solution is required' },
  SABT_RATE_LIMITED: { status: 429, message: 'Too many requests; retry later' },
  SABT_LOOKUP_LOCKED: {
    status: 429,
    message: 'Too many wrong codes: this lookup is locked until it expires; ask for a new code then',
  },
  SABT_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are larger than the limit' },
  SABT_INTERNAL: { status: 500, message: 'Internal error' },
  SABT_BROKER_UNAVAILABLE: {
    status: 503,
    message: 'Intake is unavailable (message broker unreachable); retry later',
  },
  SABT_QUEUE_FULL: { status: 503, message: 'Intake is full; retry later' },
  SABT_OVERLOADED: { status: 503, message: 'Too many registrations in flight; retry later' },
  SABT_UNROUTABLE: { status: 503, message: 'The registration could not be routed to a queue; retry later' },
  SABT_CONFIRM_TIMEOUT: {
    status: 503,
    message: 'The broker did not confirm the registration in time; retry later',
  },
  SABT_NOT_READY: { status: 503, message: 'A dependency is unavailable' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

export interface ErrorBody {
  statusCode: number
  code: ErrorCode
  message: string
  errors?: FieldError[]
}

/** An error the API answers with. `retryAfterS` adds a Retry-After header (503, 429). */
export class ApiError extends Error {
  override name = 'ApiError'
  readonly status: number
  constructor(
    readonly code: ErrorCode,
    readonly errors?: FieldError[],
    readonly retryAfterS?: number,
    message?: string,
  ) {
    super(message ?? ERRORS[code].message)
    this.status = ERRORS[code].status
  }

  /** For Fastify instances that use the default error handler (the simulator). */
  get statusCode(): number {
    return this.status
  }

  body(): ErrorBody {
    const b: ErrorBody = { statusCode: this.status, code: this.code, message: this.message }
    if (this.errors) b.errors = this.errors
    return b
  }
}

/** The catalogue as a markdown table (for the OpenAPI description and docs/api-errors.md). */
export function errorCatalogueMarkdown(): string {
  const rows = Object.entries(ERRORS).map(([code, e]) => `| \`${code}\` | ${e.status} | ${e.message} |`)
  return ['| code | HTTP status | message |', '|---|---|---|', ...rows].join('\n')
}

/** JSON schema of the error body, shared by every route's documented responses. */
export const ErrorBodySchema = {
  $id: 'ErrorBody',
  type: 'object',
  required: ['statusCode', 'code', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string', enum: Object.keys(ERRORS) },
    message: { type: 'string' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        required: ['field', 'rule', 'message'],
        properties: { field: { type: 'string' }, rule: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
} as const

interface AjvLikeError {
  keyword: string
  propertyName?: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
}

const RULES: Record<string, string> = {
  additionalProperties: 'unknown_field',
  required: 'required',
  type: 'type',
  maxLength: 'max_length',
  minLength: 'min_length',
  maxItems: 'max_items',
  minItems: 'min_items',
  maxProperties: 'max_properties',
  minProperties: 'min_properties',
  propertyNames: 'property_name',
  pattern: 'pattern',
  enum: 'enum',
  const: 'const',
  format: 'format',
  maximum: 'maximum',
  minimum: 'minimum',
}

// A name a client can read as-is: letters, digits, `_`, `$`, `-`, single inner spaces.
const PLAIN_SEGMENT = /^[\p{L}\p{N}_$-]+(?: [\p{L}\p{N}_$-]+)*$/u

/**
 * The `field` of an error: the path to it in the body, plain names joined by `.` (`attributes.city`,
 * `records.3`), and any other key written `["…"]` as a JSON string (`["a.b"]`, `attributes[""]`),
 * so a key holding a dot, a slash or nothing at all still names exactly one place. The whole body
 * is `(body)`.
 */
export function formatFieldPath(segments: readonly string[]): string {
  if (segments.length === 0) return '(body)'
  return segments
    .map((s, i) => (PLAIN_SEGMENT.test(s) ? (i === 0 ? s : `.${s}`) : `[${JSON.stringify(s)}]`))
    .join('')
}

/** Ajv's instancePath is a JSON Pointer: `/`-separated, `~1` for `/` and `~0` for `~` in keys. */
function pointerSegments(instancePath: string): string[] {
  if (instancePath === '') return []
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function fieldPath(instancePath: string, prefix: string, key?: string): string {
  const segments = [...(prefix ? [prefix] : []), ...pointerSegments(instancePath)]
  if (key !== undefined) segments.push(key)
  return formatFieldPath(segments)
}

/** Turns JSON-schema (Ajv) errors into field errors: which field, which rule, in words. */
export function fieldErrorsFromAjv(errors: readonly AjvLikeError[], prefix = ''): FieldError[] {
  const out: FieldError[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    if (e.propertyName !== undefined) continue // the inner error of a propertyNames failure; reported below
    let field = fieldPath(e.instancePath, prefix)
    let message = e.message ?? 'is invalid'
    if (e.keyword === 'additionalProperties') {
      field = fieldPath(e.instancePath, prefix, String(e.params.additionalProperty))
      message = 'is not a known field'
    } else if (e.keyword === 'required') {
      field = fieldPath(e.instancePath, prefix, String(e.params.missingProperty))
      message = 'is required'
    } else if (e.keyword === 'propertyNames') {
      field = fieldPath(e.instancePath, prefix, String(e.params.propertyName))
      message = 'is not an allowed attribute name'
    } else if (e.keyword === 'if' || e.keyword === 'anyOf' || e.keyword === 'oneOf') continue
    const rule = RULES[e.keyword] ?? e.keyword
    const key = `${field}\u0000${rule}`
    if (seen.has(key)) continue
    seen.add(key)
    out.push({ field, rule, message })
  }
  return out
}
