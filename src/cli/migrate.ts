import { defaultConfigPath, loadConfigFile } from '../config/campaigns.js'
import { migrate } from '../db/migrate.js'
import { createPool } from '../db/pool.js'
import { syncCampaigns } from '../db/registrations.js'
import { rolePasswords, setRoleLogins } from '../db/roles.js'
import type { CliContext } from './context.js'

/** `sabt migrate`: pending migrations, then the configured campaigns into the database. */
export async function runMigrate(_rest: string[], { env, log }: CliContext): Promise<number> {
  const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
  const applied = await migrate(env.DATABASE_URL, log)
  const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-migrate' })
  await syncCampaigns(pool, config.campaigns.values(), { citizenSms: config.sms !== null })
  const logins = await setRoleLogins(pool, rolePasswords(env))
  await pool.end()
  if (logins.length) log.info({ event: 'db.role_logins', roles: logins }, 'database role passwords set')
  process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')
  return 0
}
