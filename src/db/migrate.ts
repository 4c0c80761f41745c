import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runner } from 'node-pg-migrate'
import type { Logger } from '../observability/logger.js'
import { ensureDatabase } from './pool.js'

export function migrationsDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations')
}

/**
 * Creates the database if missing and applies every pending migration (plain SQL files in
 * `migrations/`, numbered, append-only). node-pg-migrate holds an advisory lock, so replicas that
 * start together migrate once.
 */
export async function migrate(url: string, log: Logger): Promise<string[]> {
  await ensureDatabase(url)
  const applied = await runner({
    databaseUrl: url,
    dir: migrationsDir(),
    direction: 'up',
    migrationsTable: 'pgmigrations',
    singleTransaction: true,
    checkOrder: true,
    log: (msg: string) => log.debug({ event: 'db.migrate' }, msg),
    logger: {
      debug: (msg: string) => log.debug({ event: 'db.migrate' }, msg),
      info: (msg: string) => log.debug({ event: 'db.migrate' }, msg),
      warn: (msg: string) => log.warn({ event: 'db.migrate' }, msg),
      error: (msg: string) => log.error({ event: 'db.migrate' }, msg),
    },
  })
  const names = applied.map((m) => m.name)
  if (names.length)
    log.info({ event: 'db.migrated', migrations: names }, `applied ${names.length} migration(s)`)
  return names
}
