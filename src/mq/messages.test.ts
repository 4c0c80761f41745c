import { describe, expect, it } from 'vitest'
import { newKey, parseDataKeys, Sealer } from '../privacy/sealing.js'
import {
  chunk,
  encodeCheckBatch,
  encodeCheckMessage,
  encodeIntakeBatch,
  encodeIntakeMessage,
  encodeIntakeRecord,
  idsPerCheckMessage,
  parseCheckMessage,
  parseIntakeMessage,
} from './messages.js'

const ID = '019abf0e-1c2d-7e3f-8a4b-5c6d7e8f9a0b'
const ID2 = '019abf0e-1c2d-7e3f-8a4b-5c6d7e8f9a0c'
const reg = {
  campaign: 'demo',
  national_id: '0499370899',
  mobile: '09121234567',
  first_name: 'علی',
  last_name: 'رضایی',
  birth_date: '1990-03-21',
  attributes: { city: 'تهران', n: 3, ok: true, none: null },
}
const sealer = new Sealer(parseDataKeys(`k1:${newKey()}`, undefined, newKey()))

describe('intake messages', () => {
  it('round-trips a clear record in every version', () => {
    const v1 = parseIntakeMessage(encodeIntakeMessage(null, ID, 1234, reg))
    expect(v1).toEqual({ v: 1, invalid: [], records: [{ id: ID, received_at: 1234, ...reg }] })
    const v3 = parseIntakeMessage(encodeIntakeBatch([encodeIntakeRecord(null, ID, 1234, reg)]))
    expect(v3).toEqual({ v: 3, invalid: [], records: [{ id: ID, received_at: 1234, ...reg }] })
  })

  it('seals the national id and mobile for their record, nothing of them in clear', () => {
    const body = encodeIntakeBatch([encodeIntakeRecord(sealer, ID, 1, reg)]).toString()
    expect(body).not.toContain(reg.national_id)
    expect(body).not.toContain(reg.mobile.slice(1))
    const m = parseIntakeMessage(Buffer.from(body))!
    const r = m.records[0] as { national_id_sealed: string; mobile_sealed: string; key_id: string }
    expect(sealer.open(Buffer.from(r.national_id_sealed, 'base64'), r.key_id, `${ID}:national_id`)).toBe(
      reg.national_id,
    )
    // Bound to its record: the same ciphertext does not open as another record's field.
    expect(() => sealer.open(Buffer.from(r.mobile_sealed, 'base64'), r.key_id, `${ID2}:mobile`)).toThrow()
    expect(parseIntakeMessage(encodeIntakeMessage(sealer, ID, 1, reg))?.v).toBe(2)
  })

  it('keeps the readable records of a version-3 message and sets the broken ones apart', () => {
    const good = encodeIntakeRecord(null, ID, 1, reg)
    const broken = JSON.stringify({ ...JSON.parse(good), id: ID2, national_id: 'x' })
    const m = parseIntakeMessage(encodeIntakeBatch([good, broken, '"not a record"']))!
    expect(m.records.map((r) => r.id)).toEqual([ID])
    expect(m.invalid).toHaveLength(2)
  })

  it('refuses what is not an intake message of a known version', () => {
    for (const body of ['', 'garbage', '{}', '{"v":4,"records":[]}', '{"v":3,"records":[]}', '[]'])
      expect(parseIntakeMessage(Buffer.from(body))).toBeNull()
    // A one-record message whose record is broken is not an intake message at all.
    expect(parseIntakeMessage(Buffer.from(JSON.stringify({ v: 1, id: ID })))).toBeNull()
  })
})

describe('check messages', () => {
  it('reads version 1 (one record) and version 2 (many) as the same thing', () => {
    expect(
      parseCheckMessage(encodeCheckMessage({ registration_id: ID, check: 'identity', campaign: 'demo' })),
    ).toEqual({ check: 'identity', campaign: 'demo', ids: [ID] })
    const batch = { check: 'mobile', campaign: 'demo', ids: [ID, ID2] }
    expect(parseCheckMessage(encodeCheckBatch(batch))).toEqual(batch)
    expect(parseCheckMessage(Buffer.from('{"v":2,"check":"x","campaign":"y","ids":[]}'))).toBeNull()
  })

  it('sizes messages so a held delivery finishes inside the consumer timeout', () => {
    expect(idsPerCheckMessage({ rate_per_second: 300, concurrency: 32 })).toBe(500) // capped
    expect(idsPerCheckMessage({ rate_per_second: 10, concurrency: 16 })).toBe(187)
    expect(idsPerCheckMessage({ rate_per_second: 0.01, concurrency: 64 })).toBe(1)
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]])
  })
})
