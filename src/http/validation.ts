/**
 * The JSON-schema (Ajv) options for every request body, in one place: Fastify's validator and the
 * batch route's per-record validator must judge a record the same way. Refuse, don't repair: no
 * type coercion, no defaults, unknown fields refused rather than stripped, every error reported.
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
