import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { Registration } from '../domain/registration.js'
import { type SealedPersonal, sealPersonal } from '../privacy/personal-fields.js'
import type { Sealer } from '../privacy/sealing.js'

/**
 * Payloads on the wire. Each carries a version `v`: a queue may hold messages written by older
 * code, so a consumer validates what it reads (it is `unknown` until then) and refuses what it
 * cannot understand, to the dead-letter queue, instead of guessing.
 */

export const MAX_IDS_PER_CHECK_MESSAGE = 500

const UUID_V7 = '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
const BASE64 = '^[A-Za-z0-9+/]+={0,2}$'
const Attributes = Type.Union([
  Type.Null(),
  Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])),
])

// A registration's fields in an intake message, clear (the recorder seals them) or sealed at the
// gateway (SABT_SEAL_AT=gateway). The same fields make a version-1/2 message (one registration)
// and each record of a version-3 message (many).
const recordHead = {
  id: Type.String({ pattern: UUID_V7 }),
  received_at: Type.Integer({ minimum: 0 }),
  campaign: Type.String({ minLength: 1, maxLength: 63 }),
}
const clearPersonal = {
  national_id: Type.String({ pattern: '^[0-9]{10}$' }),
  mobile: Type.String({ pattern: '^09[0-9]{9}$' }),
}
const sealedPersonal = {
  key_id: Type.String({ minLength: 1, maxLength: 64 }),
  national_id_index: Type.String({ pattern: BASE64, minLength: 44, maxLength: 44 }),
  national_id_sealed: Type.String({ pattern: BASE64, minLength: 4, maxLength: 128 }),
  mobile_sealed: Type.String({ pattern: BASE64, minLength: 4, maxLength: 128 }),
}
const recordTail = {
  first_name: Type.String({ minLength: 1, maxLength: 64 }),
  last_name: Type.String({ minLength: 1, maxLength: 64 }),
  birth_date: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' }),
  attributes: Attributes,
}

/** One registration, normalised, not yet sealed: the recorder seals it (SABT_SEAL_AT=recorder). */
export const IntakeRecordClear = Type.Object({ ...recordHead, ...clearPersonal, ...recordTail })
/**
 * One registration sealed at the gateway (SABT_SEAL_AT=gateway): the national id and mobile travel
 * and wait on the broker's disk (the intake queue, its dead letters) only as AES-256-GCM
 * ciphertexts, exactly as they will be stored, with the blind index beside them.
 */
export const IntakeRecordSealed = Type.Object({ ...recordHead, ...sealedPersonal, ...recordTail })
export type IntakeRecord = Static<typeof IntakeRecordClear> | Static<typeof IntakeRecordSealed>

/** Version 1: one clear registration (gateways before group commit; still read). */
export const IntakeMessageV1 = Type.Object({ v: Type.Literal(1), ...IntakeRecordClear.properties })
/** Version 2: one sealed registration (gateways before group commit; still read). */
export const IntakeMessageV2 = Type.Object({ v: Type.Literal(2), ...IntakeRecordSealed.properties })

/**
 * Version 3: the registrations one gateway took for one intake shard while its previous publish
 * there awaited its confirm (group commit) — one message and one confirm for all of them. Each
 * record is read on its own: one that cannot be understood is dead-lettered alone, never with
 * the others.
 */
export const MAX_RECORDS_PER_INTAKE_MESSAGE = 10_000
const IntakeEnvelopeV3 = Type.Object({
  v: Type.Literal(3),
  records: Type.Array(Type.Unknown(), { minItems: 1, maxItems: MAX_RECORDS_PER_INTAKE_MESSAGE }),
})

export function isSealedRecord(r: IntakeRecord): r is Static<typeof IntakeRecordSealed> {
  return 'national_id_sealed' in r
}

/**
 * One registration as an intake record (JSON text): clear without a sealer; with one, the
 * national id and mobile sealed for record `id` and the blind index beside them. Records are
 * encoded one by one as requests arrive and joined into a message by encodeIntakeBatch.
 */
export function encodeIntakeRecord(
  sealer: Sealer | null,
  id: string,
  receivedAt: number,
  r: Registration,
): string {
  const personal = sealer
    ? wireSealed(sealPersonal(sealer, id, r))
    : { national_id: r.national_id, mobile: r.mobile }
  return JSON.stringify({
    id,
    received_at: receivedAt,
    campaign: r.campaign,
    ...personal,
    first_name: r.first_name,
    last_name: r.last_name,
    birth_date: r.birth_date,
    attributes: r.attributes,
  })
}

/** Sealed personal data as an intake record carries it (base64, the message's field names). */
function wireSealed(p: SealedPersonal) {
  return {
    key_id: p.keyId,
    national_id_index: p.nationalIdIndex.toString('base64'),
    national_id_sealed: p.nationalIdSealed.toString('base64'),
    mobile_sealed: p.mobileSealed.toString('base64'),
  }
}

/** A version-3 intake message from encoded records. */
export function encodeIntakeBatch(records: readonly string[]): Buffer {
  return Buffer.from(`{"v":3,"records":[${records.join(',')}]}`)
}

/**
 * A version-1 (clear) or version-2 (sealed) message: one registration. Gateways now publish
 * version 3; tests and tools that stand in for older gateways use this.
 */
export function encodeIntakeMessage(
  sealer: Sealer | null,
  id: string,
  receivedAt: number,
  r: Registration,
): Buffer {
  const record = encodeIntakeRecord(sealer, id, receivedAt, r)
  return Buffer.from(`{"v":${sealer ? 2 : 1},${record.slice(1)}`)
}

/** One check of one record (version 1; still read, e.g. from queues written by older code). */
export const CheckMessageV1 = Type.Object({
  v: Type.Literal(1),
  registration_id: Type.String({ format: 'uuid' }),
  check: Type.String({ minLength: 1, maxLength: 32 }),
  campaign: Type.String({ minLength: 1, maxLength: 63 }),
})

/**
 * One check of many records of one campaign (version 2): the recorder writes one per batch and
 * check instead of one per record, so the broker moves one message where it moved hundreds.
 * Ids only, never personal data: the checker reads the records.
 */
export const CheckMessageV2 = Type.Object({
  v: Type.Literal(2),
  check: Type.String({ minLength: 1, maxLength: 32 }),
  campaign: Type.String({ minLength: 1, maxLength: 63 }),
  ids: Type.Array(Type.String({ format: 'uuid' }), { minItems: 1, maxItems: MAX_IDS_PER_CHECK_MESSAGE }),
})

/** A check message as the checker works with it, whichever version it arrived as. */
export interface CheckMessage {
  check: string
  campaign: string
  ids: string[]
}

const intakeV1 = Compile(IntakeMessageV1)
const intakeV2 = Compile(IntakeMessageV2)
const intakeV3 = Compile(IntakeEnvelopeV3)
const recordClear = Compile(IntakeRecordClear)
const recordSealed = Compile(IntakeRecordSealed)
const checkV1 = Compile(CheckMessageV1)
const checkV2 = Compile(CheckMessageV2)

function parse<T>(content: Buffer, check: (v: unknown) => boolean): T | null {
  let value: unknown
  try {
    value = JSON.parse(content.toString('utf8'))
  } catch {
    return null
  }
  return check(value) ? (value as T) : null
}

/** An intake message read: its valid records, and the ones that cannot be understood (as they came). */
export interface ParsedIntake {
  v: 1 | 2 | 3
  records: IntakeRecord[]
  invalid: unknown[]
}

/**
 * Reads an intake message of any version; null when it is not one at all (not JSON, no known
 * version, or a version-1/2 message whose one registration is malformed).
 */
export function parseIntakeMessage(content: Buffer): ParsedIntake | null {
  let value: unknown
  try {
    value = JSON.parse(content.toString('utf8'))
  } catch {
    return null
  }
  if (intakeV3.Check(value)) {
    const out: ParsedIntake = { v: 3, records: [], invalid: [] }
    for (const r of value.records) {
      if (recordClear.Check(r) || recordSealed.Check(r)) out.records.push(r as IntakeRecord)
      else out.invalid.push(r)
    }
    return out
  }
  if (intakeV2.Check(value) || intakeV1.Check(value)) {
    const { v, ...record } = value as { v: 1 | 2 } & IntakeRecord
    return { v, records: [record as IntakeRecord], invalid: [] }
  }
  return null
}

export function parseCheckMessage(content: Buffer): CheckMessage | null {
  const m = parse<Static<typeof CheckMessageV1> | Static<typeof CheckMessageV2>>(
    content,
    (v) => checkV2.Check(v) || checkV1.Check(v),
  )
  if (!m) return null
  if (m.v === 2) return { check: m.check, campaign: m.campaign, ids: m.ids }
  return { check: m.check, campaign: m.campaign, ids: [m.registration_id] }
}

/** A version-1 message: one record (tests and tools that stand in for older code use it). */
export function encodeCheckMessage(m: { registration_id: string; check: string; campaign: string }): Buffer {
  return Buffer.from(
    `{"v":1,"registration_id":"${m.registration_id}","check":${JSON.stringify(m.check)},"campaign":${JSON.stringify(m.campaign)}}`,
  )
}

export function encodeCheckBatch(m: CheckMessage): Buffer {
  return Buffer.from(
    `{"v":2,"check":${JSON.stringify(m.check)},"campaign":${JSON.stringify(m.campaign)},"ids":${JSON.stringify(m.ids)}}`,
  )
}

/**
 * How many ids one check message may carry: enough to spare the broker, few enough that a
 * checker holding `concurrency` of them at the provider's rate finishes within ~5 minutes
 * (far inside RabbitMQ's consumer timeout). Never more than MAX_IDS_PER_CHECK_MESSAGE.
 */
export function idsPerCheckMessage(check: { rate_per_second: number; concurrency: number }): number {
  return Math.max(
    1,
    Math.min(MAX_IDS_PER_CHECK_MESSAGE, Math.floor((check.rate_per_second * 300) / check.concurrency)),
  )
}

/** Splits ids into messages of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** Why the recorder dead-lettered a registration on its own (unparseable, unknown_campaign, unknown_key, data_error). */
export const DEAD_REASON_HEADER = 'x-sabt-dead-reason'

/** The attempt number a check message carries (0 on its first delivery to a checker). */
export const ATTEMPT_HEADER = 'x-sabt-attempt'
