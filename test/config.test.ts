import { describe, expect, it } from 'vitest'
import { buildConfig, defaultConfigPath, loadConfigFile } from '../src/config/campaigns.js'
import { ConfigError, loadEnv } from '../src/config/env.js'

const check = { provider: 'identity', url: 'http://x/identity' }

describe('configuration', () => {
  it('loads the shipped file, with its demo campaign and three checks', () => {
    const c = loadConfigFile(defaultConfigPath(), {})
    expect([...c.campaigns.keys()]).toContain('demo')
    expect([...c.checks.keys()]).toEqual(['identity', 'mobile', 'eligibility'])
    expect(c.campaigns.get('demo')!.checks).toEqual([
      { name: 'identity', after: [] },
      { name: 'mobile', after: ['identity'] },
      { name: 'eligibility', after: [] },
    ])
    expect(c.checks.get('identity')!.url).toBe('http://127.0.0.1:8090/identity')
  })

  it('caps the records per person of a campaign: 3 unless the campaign says otherwise', () => {
    const c = buildConfig(
      { campaigns: { a: { title: 'A' }, b: { title: 'B', max_records_per_person: 1 } } },
      {},
    )
    expect(c.campaigns.get('a')!.maxRecordsPerPerson).toBe(3)
    expect(c.campaigns.get('b')!.maxRecordsPerPerson).toBe(1)
    expect(loadConfigFile(defaultConfigPath(), {}).campaigns.get('demo')!.maxRecordsPerPerson).toBe(3)
  })

  it('reads ${VAR} and ${VAR:-default} from the environment', () => {
    const c = loadConfigFile(defaultConfigPath(), {
      SABT_SIMULATOR_URL: 'http://sim:9000',
      SABT_MOBILE_URL: 'https://operator/m',
    })
    expect(c.checks.get('identity')!.url).toBe('http://sim:9000/identity')
    expect(c.checks.get('mobile')!.url).toBe('https://operator/m')
  })

  it.each([
    [{ campaigns: { demo: { title: 'x', colour: 'red' } } }, /campaigns\.demo.*unknown key colour/],
    [{ campaigns: { demo: {} } }, /campaigns\.demo.*missing title/],
    [{ campaigns: { 'Bad Slug': { title: 'x' } } }, /campaigns/],
    [
      { campaigns: { demo: { title: 'x', checks: ['identity'] } } },
      /campaigns\.demo\.checks\.0: unknown check identity/,
    ],
    [
      {
        checks: { a: check, b: check },
        campaigns: {
          demo: {
            title: 'x',
            checks: [
              { name: 'a', after: ['b'] },
              { name: 'b', after: ['a'] },
            ],
          },
        },
      },
      /cycle/,
    ],
    [
      { checks: { a: check }, campaigns: { demo: { title: 'x', checks: [{ name: 'a', after: ['z'] }] } } },
      /checks\.0\.after: z/,
    ],
    [
      { checks: { a: { ...check, timeout_ms: -1 } }, campaigns: { demo: { title: 'x' } } },
      /checks\.a\.timeout_ms/,
    ],
    [{ retry_tiers: ['soon'], campaigns: { demo: { title: 'x' } } }, /retry_tiers\.0/],
    [
      { checks: { a: { provider: 'identity', url: '${NOPE}' } }, campaigns: { demo: { title: 'x' } } },
      /NOPE is not set/,
    ],
    [
      { campaigns: { demo: { title: 'x', max_records_per_person: 0 } } },
      /campaigns\.demo\.max_records_per_person/,
    ],
    [
      { campaigns: { demo: { title: 'x', max_records_per_person: 'three' } } },
      /campaigns\.demo\.max_records_per_person/,
    ],
  ])('refuses a bad file, naming the key (%#)', (doc, message) => {
    expect(() => buildConfig(doc, {})).toThrow(ConfigError)
    expect(() => buildConfig(doc, {})).toThrow(message)
  })

  it('refuses a bad environment variable, naming it', () => {
    expect(() => loadEnv({ PORT: 'eighty' })).toThrow(/PORT/)
    expect(() => loadEnv({ SABT_INTAKE_SHARDS: '0' })).toThrow(/SABT_INTAKE_SHARDS/)
    expect(loadEnv({}).DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/sabt')
    expect(loadEnv({}).AMQP_URL).toBe('amqp://guest:guest@127.0.0.1:5672')
    expect(loadEnv({}).PORT).toBe(8080)
  })

  it('trusts proxies by address or CIDR only: a bare hop count stops the start, naming SABT_TRUST_PROXY', () => {
    for (const hops of ['1', '2', '0']) {
      expect(() => loadEnv({ SABT_TRUST_PROXY: hops })).toThrow(ConfigError)
      expect(() => loadEnv({ SABT_TRUST_PROXY: hops })).toThrow(/SABT_TRUST_PROXY=\d is a hop count/)
    }
    expect(() => loadEnv({ SABT_TRUST_PROXY: '10.0.0.0/8,1' })).toThrow(/SABT_TRUST_PROXY/)
    for (const bad of ['10.0.0.0/33', 'traefik', '10.0.0/8', '::1/129', '10.0.0.1/8/2'])
      expect(() => loadEnv({ SABT_TRUST_PROXY: bad }), bad).toThrow(/SABT_TRUST_PROXY entry/)
    for (const good of ['10.0.0.0/8,172.16.0.0/12', '192.168.1.10', 'fd00::/8, ::1', 'loopback'])
      expect(loadEnv({ SABT_TRUST_PROXY: good }).SABT_TRUST_PROXY, good).toBe(good)
    expect(loadEnv({}).SABT_TRUST_PROXY).toBe('')
    expect(loadEnv({}).SABT_COOKIE_SECURE).toBe(true)
    expect(loadEnv({ SABT_COOKIE_SECURE: 'false' }).SABT_COOKIE_SECURE).toBe(false)
  })

  it('takes an empty variable as unset, as docker-compose.yml passes `${VAR:-}` (found by npm run test:deploy)', () => {
    // Compose sets PUBLIC_URL, SABT_DATA_KEY_ID, SABT_CHECKS… to '' when .env leaves them empty;
    // every container refused to start ("must NOT have fewer than 1 characters").
    const empty = [
      'PUBLIC_URL',
      'SABT_DATA_KEY_ID',
      'SABT_CHECKS',
      'DATABASE_READ_URL',
      'SABT_SIMULATOR_KNOBS',
    ]
    const saved = Object.fromEntries([...empty, 'SABT_MQ_PREFIX'].map((k) => [k, process.env[k]]))
    try {
      for (const k of empty) process.env[k] = ''
      const env = loadEnv()
      for (const k of empty) expect(env[k as keyof typeof env], k).toBeUndefined()
      // A record given to loadEnv is the whole environment: process.env does not leak into it.
      process.env.SABT_MQ_PREFIX = 'from-process-env'
      expect(loadEnv({}).SABT_MQ_PREFIX).toBe('sabt')
    } finally {
      for (const [k, v] of Object.entries(saved))
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
    }
  })
})
