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

const SECRET_VARS = ['SABT_DATA_KEYS', 'SABT_INDEX_KEY', 'SABT_ADMIN_TOKEN', 'SABT_CALLBACK_SECRET'] as const

/**
 * Secrets come from the environment. Outside production, any that are missing are generated once
 * into a local file (git-ignored, mode 0600) so `npm start` works on a fresh clone and keeps
 * working across restarts; in production a missing secret stops the process, naming it.
 */
export function resolveSecrets(env: Env): Secrets {
  const missing = SECRET_VARS.filter((k) => !env[k])
  let file: DevSecretsFile | null = null
  if (missing.length > 0) {
    if (env.NODE_ENV === 'production')
      throw new ConfigError(`missing secret(s) in production: ${missing.join(', ')}`)
    file = loadOrCreateDevSecrets(env.SABT_SECRETS_FILE)
  }
  try {
    return {
      dataKeys: parseDataKeys(
        env.SABT_DATA_KEYS ?? file!.data_keys,
        env.SABT_DATA_KEYS ? env.SABT_DATA_KEY_ID : undefined,
        env.SABT_INDEX_KEY ?? file!.index_key,
      ),
      adminToken: env.SABT_ADMIN_TOKEN ?? file!.admin_token,
      callbackSecret: env.SABT_CALLBACK_SECRET ?? file!.callback_secret ?? file!.admin_token,
      generatedFile: file ? env.SABT_SECRETS_FILE : null,
      adminTokenGenerated: !env.SABT_ADMIN_TOKEN,
    }
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
