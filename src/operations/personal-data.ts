import type { SabtConfig } from '../config/campaigns.js'
import { pruneLookupCodes } from '../db/citizen.js'
import { eraseCampaign, reindexAll, resealAll, withSweepLock } from '../db/personal-data.js'
import type { Pool } from '../db/pool.js'
import { Periodic } from '../lib/periodic.js'
import type { Logger } from '../observability/logger.js'

export { eraseCampaign, reindexAll, resealAll }

/**
 * Retention: erases the personal data of every campaign past its `retention_days`, one sweeper at
 * a time across processes (an advisory lock; another process's sweep in progress makes this one
 * a no-op), and prunes the "am I registered?" requests no limit counts any more. Returns how many
 * registrations were erased, by campaign.
 */
export async function eraseExpired(
  pool: Pool,
  config: SabtConfig,
  log: Logger,
): Promise<Map<string, number>> {
  const erasedBy = new Map<string, number>()
  for (const c of config.campaigns.values()) {
    if (c.retentionDays === null) continue
    const erased = await withSweepLock(pool, 'sabt-erase', () =>
      eraseCampaign(pool, c.slug, { retentionDays: c.retentionDays }),
    )
    if (!erased) continue
    erasedBy.set(c.slug, erased)
    log.info({ event: 'retention.erased', campaign: c.slug, erased }, 'erased expired personal data')
  }
  const pruned = await withSweepLock(pool, 'sabt-lookup-prune', () => pruneLookupCodes(pool))
  if (pruned)
    log.info({ event: 'retention.lookups_pruned', pruned }, 'pruned lookup requests past every limit')
  return erasedBy
}

/** Runs eraseExpired every `everyS` seconds, one run at a time; the returned function stops it. */
export function startRetentionSweeper(
  pool: Pool,
  config: SabtConfig,
  log: Logger,
  everyS: number,
): () => Promise<void> {
  const sweeper = new Periodic(
    () => eraseExpired(pool, config, log),
    everyS * 1000,
    (err) => log.warn({ event: 'retention.failed', err: (err as Error).message }),
  )
  sweeper.start()
  return () => sweeper.stop()
}
