import Type from 'typebox'
import type { AttributeValue } from '../../domain/registration.js'

/**
 * The intake's JSON schemas: Fastify compiles them into the validator (unknown fields refused,
 * no coercion), the fast serializer, and the OpenAPI document. Types and sizes only: the rules
 * a schema cannot say (checksum, calendar, normalisation) are in src/domain.
 */
export const ATTRIBUTES_MAX = 20

export const Attributes = Type.Unsafe<Record<string, AttributeValue>>({
  type: 'object',
  description: `Extra answers: a flat object of at most ${ATTRIBUTES_MAX} scalar values (string ≤ 256 chars, number, boolean, null).`,
  maxProperties: ATTRIBUTES_MAX,
  propertyNames: { pattern: '^[a-z][a-z0-9_]{0,39}$' },
  additionalProperties: {
    anyOf: [{ type: 'string', maxLength: 256 }, { type: 'number' }, { type: 'boolean' }, { type: 'null' }],
  },
})

export const RegistrationBody = Type.Object(
  {
    campaign: Type.String({
      minLength: 1,
      maxLength: 63,
      description: 'The campaign slug',
      examples: ['demo'],
    }),
    national_id: Type.String({
      minLength: 1,
      maxLength: 32,
      description:
        'Iranian national id: 10 digits with a valid check digit. Persian and Arabic-Indic digits are accepted.',
      examples: ['0499370899'],
    }),
    mobile: Type.String({
      minLength: 1,
      maxLength: 32,
      description: 'Iranian mobile number: 09…, +989…, 989… or 00989…; stored as 09XXXXXXXXX.',
      examples: ['09121234567'],
    }),
    first_name: Type.String({ minLength: 1, maxLength: 128, examples: ['علی'] }),
    last_name: Type.String({ minLength: 1, maxLength: 128, examples: ['رضایی'] }),
    birth_date: Type.String({
      minLength: 1,
      maxLength: 32,
      description: 'ISO date YYYY-MM-DD, a real calendar date in the past',
      examples: ['1990-03-21'],
    }),
    attributes: Type.Optional(Attributes),
  },
  { additionalProperties: false, $id: 'Registration' },
)

export const Accepted = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'UUIDv7: the registration id, time-ordered' }),
    status_url: Type.String({ description: 'Where to follow the registration' }),
  },
  { $id: 'Accepted' },
)

export const BatchBody = (maxRecords: number) =>
  Type.Object(
    {
      records: Type.Array(Type.Unsafe<Record<string, unknown>>({ $ref: 'Registration#' }), {
        minItems: 1,
        maxItems: maxRecords,
      }),
    },
    { additionalProperties: false },
  )

/** The batch envelope as validated by Fastify: records are validated one by one, each answered. */
export const BatchEnvelope = (maxRecords: number) =>
  Type.Object(
    { records: Type.Array(Type.Unsafe<Record<string, unknown>>({}), { minItems: 1, maxItems: maxRecords }) },
    { additionalProperties: false },
  )

export const BatchResult = Type.Object({
  accepted: Type.Integer(),
  rejected: Type.Integer(),
  results: Type.Array(
    Type.Object({
      index: Type.Integer(),
      status: Type.Integer({ description: '202, or the status this record alone would have had' }),
      id: Type.Optional(Type.String()),
      status_url: Type.Optional(Type.String()),
      code: Type.Optional(Type.String()),
      message: Type.Optional(Type.String()),
      errors: Type.Optional(
        Type.Array(Type.Object({ field: Type.String(), rule: Type.String(), message: Type.String() })),
      ),
    }),
  ),
})
