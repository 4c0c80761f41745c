import { describe, expect, it } from 'vitest'
import { loadEnv } from '../src/config/env.js'
import { resolveSecrets, secretsFor } from '../src/config/secrets.js'
import { newKey } from '../src/privacy/sealing.js'

/** Each role is given only the secrets it uses (decision 020); compose follows this table. */
describe('secrets per role', () => {
  it('names what each role needs: the gateway none with the default sealing', () => {
    const env = { SABT_SEAL_AT: 'recorder' as const }
    expect(secretsFor(['gateway'], env)).toEqual([])
    expect(secretsFor(['gateway'], { SABT_SEAL_AT: 'gateway' })).toEqual(['SABT_DATA_KEYS', 'SABT_INDEX_KEY'])
    expect(secretsFor(['recorder'], env)).toEqual(['SABT_DATA_KEYS', 'SABT_INDEX_KEY'])
    expect(secretsFor(['checker'], env)).toEqual(['SABT_DATA_KEYS', 'SABT_INDEX_KEY', 'SABT_CALLBACK_SECRET'])
    expect(secretsFor(['status'], env)).toEqual(['SABT_DATA_KEYS', 'SABT_INDEX_KEY', 'SABT_ADMIN_TOKEN'])
    expect(secretsFor(['simulator'], env)).toEqual(['SABT_ADMIN_TOKEN'])
  })

  it('in production a recorder starts without the admin token and callback secret, and refuses without its keys', () => {
    const base = { NODE_ENV: 'production', SABT_SECRETS_FILE: '/nonexistent/never-written.json' }
    const keys = { SABT_DATA_KEYS: `k1:${newKey()}`, SABT_INDEX_KEY: newKey() }
    const s = resolveSecrets(
      loadEnv({ ...base, ...keys }),
      secretsFor(['recorder'], { SABT_SEAL_AT: 'recorder' }),
    )
    expect(s.dataKeys.currentKeyId).toBe('k1')
    expect(() => s.adminToken).toThrow(/SABT_ADMIN_TOKEN is not given to this process/)
    expect(() => s.callbackSecret).toThrow(/SABT_CALLBACK_SECRET is not given/)
    expect(() =>
      resolveSecrets(loadEnv({ ...base, SABT_INDEX_KEY: keys.SABT_INDEX_KEY }), [
        'SABT_DATA_KEYS',
        'SABT_INDEX_KEY',
      ]),
    ).toThrow(/missing secret\(s\) in production: SABT_DATA_KEYS/)
  })
})
