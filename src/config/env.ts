import { isIP } from 'node:net'
import envSchema from 'env-schema'
import Type, { type Static } from 'typebox'

/**
 * Every environment variable Sabt reads, with its default: the one place to look.
 * Validated at start; a bad value stops the process with an error naming the variable.
 */
export const EnvSchema = Type.Object({
  DATABASE_URL: Type.String({ default: 'postgres://postgres@127.0.0.1:5432/sabt', minLength: 1 }),
  DATABASE_READ_URL: Type.Optional(Type.String({ minLength: 1 })),
  DATABASE_POOL_SIZE: Type.Integer({ default: 10, minimum: 1, maximum: 200 }),
  AMQP_URL: Type.String({ default: 'amqp://guest:guest@127.0.0.1:5672', minLength: 1 }),
  HOST: Type.String({ default: '0.0.0.0' }),
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }),
  PUBLIC_URL: Type.Optional(Type.String({ minLength: 1 })),
  LOG_LEVEL: Type.Union(
    [
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ],
    { default: 'info' },
  ),
  SABT_CONFIG: Type.Optional(Type.String({ minLength: 1 })),
  SABT_MQ_PREFIX: Type.String({ default: 'sabt', pattern: '^[a-zA-Z0-9_-]+$' }),
  SABT_INTAKE_SHARDS: Type.Integer({ default: 1, minimum: 1, maximum: 64 }),
  SABT_INTAKE_MAX_LENGTH: Type.Integer({ default: 2_000_000, minimum: 1 }),
  SABT_INTAKE_DELIVERY_LIMIT: Type.Integer({ default: 5, minimum: 1 }),
  SABT_BODY_LIMIT: Type.Integer({ default: 16_384, minimum: 1024 }),
  SABT_BATCH_BODY_LIMIT: Type.Integer({ default: 1_048_576, minimum: 1024 }),
  SABT_BATCH_MAX_RECORDS: Type.Integer({ default: 1000, minimum: 1, maximum: 10_000 }),
  SABT_CONFIRM_TIMEOUT_MS: Type.Integer({ default: 5000, minimum: 10 }),
  SABT_PUBLISH_MAX_IN_FLIGHT: Type.Integer({ default: 20_000, minimum: 1 }),
  SABT_INTAKE_BATCH_MAX_RECORDS: Type.Integer({ default: 2000, minimum: 1, maximum: 10_000 }),
  SABT_INTAKE_BATCH_MAX_BYTES: Type.Integer({ default: 1_048_576, minimum: 1024, maximum: 67_108_864 }),
  SABT_INTAKE_LINGER_MS: Type.Integer({ default: 2, minimum: 0, maximum: 10_000 }),
  SABT_INTAKE_LINGER_RECORDS: Type.Integer({ default: 64, minimum: 1, maximum: 10_000 }),
  SABT_RETRY_AFTER_S: Type.Integer({ default: 2, minimum: 1 }),
  SABT_REQUEST_TIMEOUT_MS: Type.Integer({ default: 10_000, minimum: 100 }),
  SABT_HEADERS_TIMEOUT_MS: Type.Integer({ default: 5000, minimum: 100 }),
  SABT_MAX_HEADER_BYTES: Type.Integer({ default: 16_384, minimum: 1024, maximum: 1_048_576 }),
  SABT_MAX_CONNECTIONS: Type.Integer({ default: 10_000, minimum: 1 }),
  SABT_TRUST_PROXY: Type.String({ default: '' }),
  SABT_COOKIE_SECURE: Type.Boolean({ default: true }),
  SABT_CLIENT_RATE: Type.Number({ default: 20, minimum: 0 }),
  SABT_CLIENT_BURST: Type.Integer({ default: 200, minimum: 1 }),
  SABT_CLIENT_TRACKED: Type.Integer({ default: 100_000, minimum: 1 }),
  SABT_LOGIN_MAX_FAILURES: Type.Integer({ default: 10, minimum: 1 }),
  SABT_LOGIN_WINDOW_S: Type.Integer({ default: 900, minimum: 1 }),
  SABT_SEAL_AT: Type.Union([Type.Literal('recorder'), Type.Literal('gateway')], { default: 'recorder' }),
  SABT_RECORDER_PREFETCH: Type.Integer({ default: 4000, minimum: 1 }),
  SABT_BATCH_SIZE: Type.Integer({ default: 1000, minimum: 1 }),
  SABT_BATCH_MS: Type.Integer({ default: 25, minimum: 1 }),
  SABT_INTAKE_WATERMARK_MARGIN_MS: Type.Integer({ default: 30_000, minimum: 0 }),
  SABT_INTAKE_WATERMARK_EVERY_MS: Type.Integer({ default: 2000, minimum: 50 }),
  SABT_INTAKE_WATERMARK_HEARTBEAT_MS: Type.Integer({ default: 1000, minimum: 20 }),
  SABT_INTAKE_WATERMARK_EXPIRY_MS: Type.Integer({ default: 30_000, minimum: 1000 }),
  SABT_QUEUED_WINDOW_S: Type.Integer({ default: 900, minimum: 1 }),
  SABT_ADMIN_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  SABT_DATA_KEYS: Type.Optional(Type.String({ minLength: 1 })),
  SABT_DATA_KEY_ID: Type.Optional(Type.String({ minLength: 1 })),
  SABT_INDEX_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** `sabt reindex` only: the index key to rotate to (docs/security.md). */
  SABT_INDEX_KEY_NEW: Type.Optional(Type.String({ minLength: 1 })),
  SABT_SECRETS_FILE: Type.String({ default: '.sabt/dev-secrets.json' }),
  SABT_SIMULATOR_PORT: Type.Integer({ default: 8090, minimum: 0, maximum: 65535 }),
  SABT_SIMULATOR_URL: Type.String({ default: 'http://127.0.0.1:8090' }),
  SABT_SIMULATOR_KNOBS: Type.Optional(Type.String({ minLength: 2 })),
  SABT_CALLBACK_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  SABT_DB_GATEWAY_PASSWORD: Type.Optional(Type.String({ minLength: 16 })),
  SABT_DB_RECORDER_PASSWORD: Type.Optional(Type.String({ minLength: 16 })),
  SABT_DB_CHECKER_PASSWORD: Type.Optional(Type.String({ minLength: 16 })),
  SABT_DB_STATUS_PASSWORD: Type.Optional(Type.String({ minLength: 16 })),
  SABT_CHECKS: Type.Optional(Type.String({ minLength: 1 })),
  SABT_CALLBACK_SWEEP_MS: Type.Integer({ default: 5000, minimum: 50 }),
  SABT_CALLBACK_LEASE_MS: Type.Integer({ default: 30_000, minimum: 100 }),
  SABT_FINALITY_SWEEP_MS: Type.Integer({ default: 2000, minimum: 50 }),
  SABT_SMS_SWEEP_MS: Type.Integer({ default: 1000, minimum: 50 }),
  SABT_SMS_LEASE_MS: Type.Integer({ default: 300_000, minimum: 100 }),
  SABT_POW_SECRET: Type.Optional(Type.String()),
  SABT_LOOKUP_CODE_TTL_S: Type.Integer({ default: 300, minimum: 10 }),
  SABT_LOOKUP_PER_ID_PER_DAY: Type.Integer({ default: 5, minimum: 1 }),
  SABT_LOOKUP_PER_MOBILE_PER_DAY: Type.Integer({ default: 5, minimum: 1 }),
  SABT_LOOKUP_PER_CLIENT_PER_HOUR: Type.Integer({ default: 30, minimum: 1 }),
  SABT_ERASE_EVERY_S: Type.Integer({ default: 3600, minimum: 0 }),
  SABT_SHUTDOWN_TIMEOUT_MS: Type.Integer({ default: 15_000, minimum: 100 }),
  NODE_ENV: Type.String({ default: 'development' }),
})

export type Env = Static<typeof EnvSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Reads and validates the environment (or a given record, for tests). Unknown variables are
 * ignored, and so is an empty one: compose passes `${VAR:-}` as '' when .env leaves it empty.
 */
export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  const data: Record<string, string> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const v = source[key]
    if (v !== undefined && v !== '') data[key] = v
  }
  let env: Env
  try {
    // env: false — env-schema would otherwise read process.env itself, empty strings included.
    env = envSchema<Env>({ schema: EnvSchema, data, env: false })
  } catch (err) {
    throw new ConfigError(`invalid environment: ${(err as Error).message}`)
  }
  parseTrustProxy(env.SABT_TRUST_PROXY)
  return env
}

const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal'])

/**
 * `SABT_TRUST_PROXY`: the addresses (or CIDRs) of the proxies whose X-Forwarded-For/-Proto/-Host
 * are believed, comma-separated; `loopback`, `linklocal` and `uniquelocal` name their ranges.
 * Never a hop count: with one, a client talking to Sabt directly is believed about itself.
 */
export function parseTrustProxy(value: string): string[] {
  const entries = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const e of entries) {
    if (/^[0-9]+$/.test(e))
      throw new ConfigError(
        `invalid environment: SABT_TRUST_PROXY=${e} is a hop count; give the proxies' addresses or CIDRs instead (e.g. 10.0.0.0/8,172.16.0.0/12)`,
      )
    if (NAMED_RANGES.has(e)) continue
    const [addr, prefix, extra] = e.split('/')
    const family = isIP(addr ?? '')
    const max = family === 6 ? 128 : 32
    const prefixOk =
      prefix === undefined || (/^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= max && extra === undefined)
    if (family === 0 || !prefixOk)
      throw new ConfigError(
        `invalid environment: SABT_TRUST_PROXY entry ${JSON.stringify(e)} is not an IP address or CIDR (e.g. 10.0.0.0/8)`,
      )
  }
  return entries
}
