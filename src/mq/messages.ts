import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'

/**
 * Payloads on the wire. Each carries a version `v`: a queue may hold messages written by older
 * code, so a consumer validates what it reads (it is `unknown` until then) and refuses what it
 * cannot understand, to the dead-letter queue, instead of guessing.
 */

/** A registration on its way from the gateway to the recorder. Normalised, not yet sealed. */
export const IntakeMessageV1 = Type.Object({
  v: Type.Literal(1),
  id: Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' }),
  received_at: Type.Integer({ minimum: 0 }),
  campaign: Type.String({ minLength: 1, maxLength: 63 }),
  national_id: Type.String({ pattern: '^[0-9]{10}$' }),
  mobile: Type.String({ pattern: '^09[0-9]{9}$' }),
  first_name: Type.String({ minLength: 1, maxLength: 64 }),
  last_name: Type.String({ minLength: 1, maxLength: 64 }),
  birth_date: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' }),
  attributes: Type.Union([
    Type.Null(),
    Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])),
  ]),
})
export type IntakeMessage = Static<typeof IntakeMessageV1>

/** One check of one record. Carries ids only, never personal data: the checker reads the record. */
export const CheckMessageV1 = Type.Object({
  v: Type.Literal(1),
  registration_id: Type.String({ format: 'uuid' }),
  check: Type.String({ minLength: 1, maxLength: 32 }),
  campaign: Type.String({ minLength: 1, maxLength: 63 }),
})
export type CheckMessage = Static<typeof CheckMessageV1>

const intakeValidator = Compile(IntakeMessageV1)
const checkValidator = Compile(CheckMessageV1)

function parse<T>(content: Buffer, check: (v: unknown) => boolean): T | null {
  let value: unknown
  try {
    value = JSON.parse(content.toString('utf8'))
  } catch {
    return null
  }
  return check(value) ? (value as T) : null
}

export function parseIntakeMessage(content: Buffer): IntakeMessage | null {
  return parse<IntakeMessage>(content, (v) => intakeValidator.Check(v))
}

export function parseCheckMessage(content: Buffer): CheckMessage | null {
  return parse<CheckMessage>(content, (v) => checkValidator.Check(v))
}

export function encodeCheckMessage(m: Omit<CheckMessage, 'v'>): Buffer {
  return Buffer.from(
    `{"v":1,"registration_id":"${m.registration_id}","check":${JSON.stringify(m.check)},"campaign":${JSON.stringify(m.campaign)}}`,
  )
}

/** The attempt number a check message carries (0 on its first delivery to a checker). */
export const ATTEMPT_HEADER = 'x-sabt-attempt'
