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

// ---- "am I registered?": the blind indexes it counts and finds by, and the one-time code ----------

/**
 * The blind indexes a lookup request is counted and found by, each under its own prefix so that one
 * value's index never equals another kind's: the national id's is the registration's own (above),
 * a mobile's and a client address's are their own.
 */
export function mobileIndex(sealer: Sealer, mobile: string): Buffer {
  return sealer.blindIndex(`mobile:${mobile}`)
}

export function clientIndex(sealer: Sealer, address: string): Buffer {
  return sealer.blindIndex(`client:${address}`)
}

/** What a lookup's one-time code is stored as: its keyed hash, bound to the lookup. */
export function otpHash(sealer: Sealer, lookupId: string, code: string): Buffer {
  return sealer.blindIndex(`otp:${lookupId}:${code}`)
}

/** The associated data a one-time code is sealed under (only until its SMS is sent). */
function otpAad(lookupId: string): string {
  return `lookup:${lookupId}`
}

export function sealOtp(sealer: Sealer, lookupId: string, code: string): Buffer {
  return sealer.seal(code, otpAad(lookupId))
}

export function openOtp(sealer: Sealer, lookupId: string, sealed: Buffer, keyId: string): string {
  return sealer.open(sealed, keyId, otpAad(lookupId))
}

/**
 * The key a check's cached answer is kept under: the request it sent (which carries the fields it
 * opened) reduced to a blind index, so the cache holds no personal data in clear.
 */
export function checkCacheKey(sealer: Sealer, check: string, request: unknown): Buffer {
  return sealer.blindIndex(`${check}\u0000${JSON.stringify(request)}`)
}
