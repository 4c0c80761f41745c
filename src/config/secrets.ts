import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { type DataKeys, newKey, parseDataKeys } from '../privacy/sealing.js'
import { ConfigError, type Env } from './env.js'

export interface Secrets {
  dataKeys: DataKeys
  adminToken: string
  /** Signs verdict callbacks (HMAC-SHA256); shared with each campaign's receiver. */
  callbackSecret: string
  /** Where secrets that were not in the environment came from (a generated development file). */
  generatedFile: string | null
  /** The admin token came from that file, not from the environment (only then may it be printed). */
  adminTokenGenerated: boolean
}

interface DevSecretsFile {
  data_keys: string
  index_key: string
  admin_token: string
  callback_secret?: string
}

export const SECRET_VARS = [
  'SABT_DATA_KEYS',
  'SABT_INDEX_KEY',
  'SABT_ADMIN_TOKEN',
  'SABT_CALLBACK_SECRET',
] as const
export type SecretVar = (typeof SECRET_VARS)[number]

/**
 * The secrets a process running these roles uses (decision 020), so a production container is
 * given only those: the gateway none (it seals nothing by default; with SABT_SEAL_AT=gateway the
 * data and index keys), the recorder the data and index keys, the checker those and the callback
 * secret (it opens fields for the providers and keys the check cache by the index key), status
 * those and the admin token, the simulator the admin token (its knobs API).
 */
export function secretsFor(roles: readonly string[], env: Pick<Env, 'SABT_SEAL_AT'>): SecretVar[] {
  const need = new Set<SecretVar>()
  const keys = () => {
    need.add('SABT_DATA_KEYS')
    need.add('SABT_INDEX_KEY')
  }
  for (const r of roles) {
    if (r === 'gateway' && env.SABT_SEAL_AT === 'gateway') keys()
    if (r === 'recorder') keys()
    if (r === 'checker') {
      keys()
      need.add('SABT_CALLBACK_SECRET')
    }
    if (r === 'status') {
      keys()
      need.add('SABT_ADMIN_TOKEN')
    }
    if (r === 'simulator') need.add('SABT_ADMIN_TOKEN')
  }
  return SECRET_VARS.filter((v) => need.has(v))
}

/**
 * Secrets come from the environment. Outside production, any that are missing are generated once
 * into a local file (git-ignored, mode 0600) so `npm start` works on a fresh clone and keeps
 * working across restarts; in production a missing secret that the process needs (`needs`, from
 * secretsFor) stops it, naming it, and one it does not need may be absent: reading it throws.
 */
export function resolveSecrets(env: Env, needs: readonly SecretVar[] = SECRET_VARS): Secrets {
  const missing = needs.filter((k) => !env[k])
  let file: DevSecretsFile | null = null
  if (missing.length > 0) {
    if (env.NODE_ENV === 'production')
      throw new ConfigError(`missing secret(s) in production: ${missing.join(', ')}`)
    file = loadOrCreateDevSecrets(env.SABT_SECRETS_FILE)
  }
  const out = {
    generatedFile: file ? env.SABT_SECRETS_FILE : null,
    adminTokenGenerated: !env.SABT_ADMIN_TOKEN,
  } as Secrets
  const absent = (key: keyof Secrets, name: string) =>
    Object.defineProperty(out, key, {
      enumerable: false,
      get() {
        throw new ConfigError(`${name} is not given to this process (none of its roles uses it)`)
      },
    })
  try {
    const dataKeys = env.SABT_DATA_KEYS ?? file?.data_keys
    const indexKey = env.SABT_INDEX_KEY ?? file?.index_key
    if (dataKeys && indexKey)
      out.dataKeys = parseDataKeys(dataKeys, env.SABT_DATA_KEYS ? env.SABT_DATA_KEY_ID : undefined, indexKey)
    else absent('dataKeys', dataKeys ? 'SABT_INDEX_KEY' : 'SABT_DATA_KEYS')
    const adminToken = env.SABT_ADMIN_TOKEN ?? file?.admin_token
    if (adminToken) out.adminToken = adminToken
    else absent('adminToken', 'SABT_ADMIN_TOKEN')
    const callbackSecret = env.SABT_CALLBACK_SECRET ?? file?.callback_secret ?? file?.admin_token
    if (callbackSecret) out.callbackSecret = callbackSecret
    else absent('callbackSecret', 'SABT_CALLBACK_SECRET')
    return out
  } catch (err) {
    throw new ConfigError((err as Error).message)
  }
}

function loadOrCreateDevSecrets(path: string): DevSecretsFile {
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as DevSecretsFile
  const secrets: DevSecretsFile = {
    data_keys: `dev1:${newKey()}`,
    index_key: newKey(),
    admin_token: randomBytes(24).toString('base64url'),
    callback_secret: randomBytes(24).toString('base64url'),
  }
  mkdirSync(dirname(path), { recursive: true })
  // Written aside, then linked into place (atomic, and refused if it exists): processes started
  // together (gateway and recorder, each sealing) all end up with the one file that won.
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 })
  chmodSync(tmp, 0o600)
  try {
    linkSync(tmp, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return JSON.parse(readFileSync(path, 'utf8')) as DevSecretsFile
  } finally {
    unlinkSync(tmp)
  }
  return secrets
}
