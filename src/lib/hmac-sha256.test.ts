import { createHmac, randomBytes, randomInt } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { HmacSha256 } from './hmac-sha256.js'

describe('HmacSha256', () => {
  it('answers as createHmac does: keys of 0 to 200 bytes, messages of 0 to 300 characters, one instance reused', () => {
    for (let k = 0; k <= 200; k += 7) {
      const key = randomBytes(k)
      const mac = new HmacSha256(key)
      // Long then short then long again: the message buffer is reused and grown.
      for (const len of [0, 64, 300, 1, 129, 128, 127, randomInt(0, 300)]) {
        const message = randomBytes(len).toString('base64').slice(0, len)
        expect(mac.hex(message)).toBe(createHmac('sha256', key).update(message).digest('hex'))
      }
    }
  })

  it('takes a string key as UTF-8 and a message with characters outside ASCII as UTF-8', () => {
    const key = 'کلید-مخفی-🔑'
    const mac = new HmacSha256(key)
    for (const message of ['ثبت‌نام', `${'a'.repeat(200)}ی`, '']) {
      expect(mac.hex(message)).toBe(createHmac('sha256', key).update(message).digest('hex'))
    }
  })

  it('an RFC 4231 test vector (case 2)', () => {
    expect(new HmacSha256('Jefe').hex('what do ya want for nothing?')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    )
  })
})
