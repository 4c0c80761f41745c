import { defaultConfigPath, loadConfigFile } from '../config/campaigns.js'
import { createPool } from '../db/pool.js'
import { lookupRegistration } from '../operations/index.js'
import type { CliContext } from './context.js'

/** `sabt status <id>`: a registration as the status API shows it (from the replica when there is one). */
export async function runStatus(rest: string[], { env, log }: CliContext): Promise<number> {
  const id = rest[0]
  if (!id) {
    process.stderr.write('usage: sabt status <registration-id>\n')
    return 2
  }
  const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
  const pool = createPool(env.DATABASE_READ_URL ?? env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
  try {
    const view = await lookupRegistration(pool, config, id, env.SABT_QUEUED_WINDOW_S * 1000)
    const { kind, ...body } = view
    process.stdout.write(
      `${JSON.stringify(kind === 'unknown' ? { id, status: 'not_found' } : body, null, 2)}\n`,
    )
    return kind === 'unknown' ? 1 : 0
  } finally {
    await pool.end()
  }
}
