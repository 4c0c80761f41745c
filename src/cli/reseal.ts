import { resolveSecrets } from '../config/secrets.js'
import { createPool } from '../db/pool.js'
import { resealAll } from '../operations/index.js'
import { Sealer } from '../privacy/sealing.js'
import type { CliContext } from './context.js'

/** `sabt reseal`: personal data re-sealed under the current data key. */
export async function runReseal(_rest: string[], { env, log }: CliContext): Promise<number> {
  const secrets = resolveSecrets(env)
  const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
  try {
    const resealed = await resealAll(pool, new Sealer(secrets.dataKeys))
    process.stdout.write(`${JSON.stringify({ key_id: secrets.dataKeys.currentKeyId, resealed })}\n`)
    return 0
  } finally {
    await pool.end()
  }
}
