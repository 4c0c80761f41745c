import { Ajv, type ErrorObject } from 'ajv'

/**
 * The JSON-schema (Ajv) options for every request body, in one place: Fastify's validator and the
 * intake's own validators must judge a body the same way. Refuse, don't repair: no type coercion,
 * no defaults, unknown fields refused rather than stripped, every error reported.
 * `strictNumbers`: JSON can spell numbers JavaScript cannot hold (`1e400` parses as Infinity, and
 * would be stored as null); they are not numbers here. (Ajv's `strict: false` turns this off.)
 */
export const BODY_VALIDATION = {
  removeAdditional: false,
  coerceTypes: false,
  useDefaults: false,
  allErrors: true,
  strictNumbers: true,
} as const

/** Checks a parsed body; null when it is valid, else the broken rules (Ajv's errors). */
export type BodyValidator = (data: unknown) => ErrorObject[] | null

/** Whether a JSON value has more than `cap` members (object keys and array items, at any depth). */
function hasMoreMembers(value: unknown, cap: number): boolean {
  let n = 0
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const v = stack.pop()
    if (v === null || typeof v !== 'object') continue
    if (Array.isArray(v)) {
      for (const item of v) {
        if (++n > cap) return true
        stack.push(item)
      }
    } else {
      for (const k in v) {
        if (++n > cap) return true
        stack.push((v as Record<string, unknown>)[k])
      }
    }
  }
  return false
}

/**
 * Compiles the validator of one kind of body, for every route that takes it (the single and the
 * batch intake share the registration's). Every broken rule is reported, so a form can show them
 * all, within a bound: with every error on, Ajv's work and its error list grow with the body, and
 * a record of 60,000 unknown keys cost 400,000 errors, over a second of CPU and a 10 MB answer.
 * A body with more than `maxMembers` members, far more than a valid one can have, is answered
 * with its first broken rule only. A valid body is checked once, stopping at nothing.
 */
export function compileBodyValidator(schema: object, opts: { maxMembers: number }): BodyValidator {
  const first = new Ajv({ ...BODY_VALIDATION, allErrors: false }).compile(schema)
  const every = new Ajv(BODY_VALIDATION).compile(schema)
  return (data) => {
    if (first(data)) return null
    if (hasMoreMembers(data, opts.maxMembers)) return [...(first.errors ?? [])]
    every(data)
    return [...(every.errors ?? [])]
  }
}

/** A BodyValidator in the shape Fastify's `validatorCompiler` wants; its errors go to the error handler. */
export function fastifyBodyValidator(
  validate: BodyValidator,
): (data: unknown) => { value: unknown } | { error: Error } {
  return (data) => {
    const errors = validate(data)
    if (errors === null) return { value: data }
    return {
      error: Object.assign(new Error('validation'), { validation: errors, validationContext: 'body' }),
    }
  }
}
