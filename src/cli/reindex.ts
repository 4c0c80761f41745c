import { resolveSecrets } from '../config/secrets.js'
import { createPool } from '../db/pool.js'
import { reindexAll } from '../operations/index.js'
import { Sealer } from '../privacy/sealing.js'
import type { CliContext } from './context.js'

/**
 * `sabt reindex`: the blind index rotated to SABT_INDEX_KEY_NEW, offline — with the recorder, the
 * checker and the status role stopped (and the gateways too with SABT_SEAL_AT=gateway), then all
 * started with SABT_INDEX_KEY set to the new key (docs/security.md).
 */
export async function runReindex(_rest: string[], { env, log }: CliContext): Promise<number> {
  if (!env.SABT_INDEX_KEY_NEW) {
    process.stderr.write(
      'sabt reindex: set SABT_INDEX_KEY_NEW to the new index key (base64, 32 bytes or more)\n',
    )
    return 2
  }
  const current = resolveSecrets(env).dataKeys
  const indexKey = Buffer.from(env.SABT_INDEX_KEY_NEW, 'base64')
  if (indexKey.length < 32 || indexKey.equals(current.indexKey)) {
    process.stderr.write('sabt reindex: SABT_INDEX_KEY_NEW must be a new key of 32 bytes or more (base64)\n')
    return 2
  }
  const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
  try {
    const done = await reindexAll(pool, new Sealer(current), new Sealer({ ...current, indexKey }))
    process.stdout.write(`${JSON.stringify(done)}\n`)
    return 0
  } finally {
    await pool.end()
  }
}
