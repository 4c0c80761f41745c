import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { type DataKeys, newKey, parseDataKeys } from '../privacy/sealing.js'
import { ConfigError, type Env } from './env.js'

export interface Secrets {
  dataKeys: DataKeys
  adminToken: string
  /** Where secrets that were not in the environment came from (a generated development file). */
  generatedFile: string | null
}

interface DevSecretsFile {
  data_keys: string
  index_key: string
  admin_token: string
}

/**
 * Secrets come from the environment. Outside production, any that are missing are generated once
 * into a local file (git-ignored, mode 0600) so `npm start` works on a fresh clone and keeps
 * working across restarts; in production a missing secret stops the process, naming it.
 */
export function resolveSecrets(env: Env): Secrets {
  const production = env.NODE_ENV === 'production'
  let file: DevSecretsFile | null = null
  const needFile = !env.SABT_DATA_KEYS || !env.SABT_INDEX_KEY || !env.SABT_ADMIN_TOKEN
  if (needFile) {
    if (production) {
      const missing = ['SABT_DATA_KEYS', 'SABT_INDEX_KEY', 'SABT_ADMIN_TOKEN'].filter(
        (k) => !env[k as keyof Env],
      )
      throw new ConfigError(`missing secret(s) in production: ${missing.join(', ')}`)
    }
    file = loadOrCreateDevSecrets(env.SABT_SECRETS_FILE)
  }
  try {
    const dataKeys = parseDataKeys(
      env.SABT_DATA_KEYS ?? file!.data_keys,
      env.SABT_DATA_KEYS ? env.SABT_DATA_KEY_ID : undefined,
      env.SABT_INDEX_KEY ?? file!.index_key,
    )
    return {
      dataKeys,
      adminToken: env.SABT_ADMIN_TOKEN ?? file!.admin_token,
      generatedFile: file ? env.SABT_SECRETS_FILE : null,
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
  }
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 })
  chmodSync(path, 0o600)
  return secrets
}
