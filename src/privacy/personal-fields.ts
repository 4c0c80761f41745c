import type { Sealer } from './sealing.js'

/**
 * Personal data on the wire and at rest has one owner: this file. A registration's national id
 * and mobile are sealed (AES-256-GCM) under associated data that binds each ciphertext to its
 * record and its field — a ciphertext copied to another row or column does not open — and the
 * national id is also reduced to its blind index (keyed HMAC), which carries the one-place-per-
 * person rule and the lookup. Where it happens (the recorder, or the gateway with
 * SABT_SEAL_AT=gateway) is the roles' choice; how is decided only here.
 */
export type PersonalField = 'national_id' | 'mobile'

/** The associated data of a record's field: the one place it is spelled. */
export function fieldAad(recordId: string, field: PersonalField): string {
  return `${recordId}:${field}`
}

export function sealField(sealer: Sealer, recordId: string, field: PersonalField, value: string): Buffer {
  return sealer.seal(value, fieldAad(recordId, field))
}

export function openField(
  sealer: Sealer,
  recordId: string,
  field: PersonalField,
  sealed: Buffer,
  keyId: string,
): string {
  return sealer.open(sealed, keyId, fieldAad(recordId, field))
}

/** A registration's personal data as it is stored: both fields sealed, the blind index, the key. */
export interface SealedPersonal {
  nationalIdIndex: Buffer
  nationalIdSealed: Buffer
  mobileSealed: Buffer
  keyId: string
}

export function sealPersonal(
  sealer: Sealer,
  recordId: string,
  clear: { national_id: string; mobile: string },
): SealedPersonal {
  return {
    nationalIdIndex: sealer.blindIndex(clear.national_id),
    nationalIdSealed: sealField(sealer, recordId, 'national_id', clear.national_id),
    mobileSealed: sealField(sealer, recordId, 'mobile', clear.mobile),
    keyId: sealer.currentKeyId,
  }
}

/** Re-seals a stored field under the current key (key rotation). */
export function resealField(
  sealer: Sealer,
  recordId: string,
  field: PersonalField,
  sealed: Buffer,
  keyId: string,
): Buffer {
  return sealField(sealer, recordId, field, openField(sealer, recordId, field, sealed, keyId))
}
