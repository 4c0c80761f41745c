import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { Sealer } from './sealing.js'

describe('sealing', () => {
  const sealer = new Sealer({
    currentKeyId: 'k1',
    keys: new Map([['k1', randomBytes(32)]]),
    indexKey: randomBytes(32),
  })

  it('opens what it sealed, with the same associated data only', () => {
    const sealed = sealer.seal('0499370899', 'id-1/national_id')
    expect(sealer.open(sealed, 'k1', 'id-1/national_id')).toBe('0499370899')
    expect(() => sealer.open(sealed, 'k1', 'id-2/national_id')).toThrow()
  })

  it('refuses a truncated or shortened authentication tag (authTagLength 16)', () => {
    const sealed = sealer.seal('0499370899', 'aad')
    const tag = sealed.subarray(sealed.length - 16)
    const body = sealed.subarray(0, sealed.length - 16)
    for (const keep of [0, 4, 8, 12, 15]) {
      // The tag cut to `keep` bytes, the rest of the value as it was.
      const truncated = Buffer.concat([body, tag.subarray(0, keep)])
      expect(() => sealer.open(truncated, 'k1', 'aad'), `tag of ${keep} bytes`).toThrow()
    }
    expect(() =>
      sealer.open(Buffer.concat([Buffer.of(1), randomBytes(12), tag.subarray(0, 4)]), 'k1', 'aad'),
    ).toThrow(/too short/)
  })
})
