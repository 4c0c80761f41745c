import { parseArgs } from 'node:util'
import { defaultConfigPath, loadConfigFile } from '../config/campaigns.js'
import { createPool } from '../db/pool.js'
import { eraseCampaign } from '../operations/index.js'
import type { CliContext } from './context.js'

/** `sabt erase --campaign X [--all]`: personal data past the campaign's retention (or all of it). */
export async function runErase(rest: string[], { env, log }: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: rest,
    options: { campaign: { type: 'string' }, all: { type: 'boolean', default: false } },
  })
  const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
  const campaign = values.campaign ? config.campaigns.get(values.campaign) : undefined
  if (!campaign) {
    process.stderr.write(
      `usage: sabt erase --campaign X [--all]  (campaigns: ${[...config.campaigns.keys()].join(', ')})\n`,
    )
    return 2
  }
  if (!values.all && campaign.retentionDays === null) {
    process.stderr.write(
      `campaign ${campaign.slug} declares no retention_days: nothing expires (use --all to erase everything)\n`,
    )
    return 2
  }
  const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
  try {
    const erased = await eraseCampaign(pool, campaign.slug, {
      retentionDays: campaign.retentionDays,
      all: values.all ?? false,
    })
    process.stdout.write(`${JSON.stringify({ campaign: campaign.slug, erased })}\n`)
    return 0
  } finally {
    await pool.end()
  }
}
