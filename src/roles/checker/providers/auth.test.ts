import { createHash, createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { canonicalString, hmacHeaders } from './auth.js'

describe('HMAC request signing', () => {
  const call = { method: 'POST', path: '/v2/identity', body: '{"a":"علی"}', headers: { 'x-client': 'sabt' } }

  it('fills every placeholder of the canonical string', () => {
    const s = canonicalString(
      '{method}\\n{path}\\n{timestamp}\\n{nonce}\\n{body}\\n{body_sha256}\\n{header:X-Client}',
      {
        ...call,
        timestamp: '1700000000',
        nonce: 'n1',
      },
    )
    expect(s).toBe(
      `POST\n/v2/identity\n1700000000\nn1\n{"a":"علی"}\n${createHash('sha256').update(call.body).digest('hex')}\nsabt`,
    )
  })

  it('signs the default canonical string with the secret, in the configured header and encoding', () => {
    const now = 1_700_000_000_000
    const h = hmacHeaders(
      { type: 'hmac', secret: 'a-secret-123', encoding: 'base64', prefix: 'v1=' },
      call,
      now,
    )
    const canonical = `POST\n/v2/identity\n1700000000\n${createHash('sha256').update(call.body).digest('hex')}`
    expect(h).toEqual({
      'x-timestamp': '1700000000',
      'x-signature': `v1=${createHmac('sha256', 'a-secret-123').update(canonical).digest('base64')}`,
    })
  })
})
