import { readFileSync, writeFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { parseArgs } from 'node:util'
import { defaultConfigPath, loadConfigFile } from '../config/campaigns.js'
import type { Env } from '../config/env.js'
import { commitDraw, DrawRefused, drawLottery, findDraw, loadResults, releasePlace } from '../db/draws.js'
import { createPool } from '../db/pool.js'
import { verifyResults } from '../domain/draw.js'
import type { Logger } from '../observability/logger.js'

export const DRAW_USAGE = `usage:
  sabt draw commit --campaign X [--by NAME]    fix the lottery's seed; prints only its SHA-256 (before opens_at)
  sabt draw run --campaign X [--by NAME]       after draw_at, once every registration is settled: rank, reveal
  sabt draw export --campaign X [--out FILE]   the public results (seed, commitment, id → rank → won/waitlisted)
  sabt draw verify --results FILE              recompute the ranking from the seed and the ids; check the commitment
  sabt draw release <registration-id> [--by NAME]   a winner gives the place up: the first on the waiting list gets it`

const out = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`)

/** `sabt draw …` (decision 019). Exit 0 done, 1 refused or not verified, 2 usage. */
export async function runDraw(args: string[], ctx: { env: Env; log: Logger }): Promise<number> {
  const [sub, ...rest] = args
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      campaign: { type: 'string' },
      by: { type: 'string' },
      out: { type: 'string' },
      results: { type: 'string' },
    },
  })
  if (sub === 'verify') {
    if (!values.results) {
      process.stderr.write(`${DRAW_USAGE}\n`)
      return 2
    }
    const doc: unknown = JSON.parse(readFileSync(values.results, 'utf8'))
    const problems = verifyResults(doc)
    const d = doc as { campaign?: string; participants?: unknown[] }
    out({
      verified: problems.length === 0,
      campaign: d.campaign,
      participants: d.participants?.length,
      problems,
    })
    return problems.length === 0 ? 0 : 1
  }
  if (!['commit', 'run', 'export', 'release'].includes(sub ?? '')) {
    process.stderr.write(`${DRAW_USAGE}\n`)
    return 2
  }
  const by = values.by ?? (process.env.SUDO_USER || userInfo().username)
  const config = loadConfigFile(ctx.env.SABT_CONFIG ?? defaultConfigPath())
  const pool = createPool(ctx.env.DATABASE_URL, { max: 2, log: ctx.log, name: 'sabt-draw' })
  try {
    if (sub === 'release') {
      const id = positionals[0]?.toLowerCase()
      if (!id) {
        process.stderr.write(`${DRAW_USAGE}\n`)
        return 2
      }
      const a = await pool.query<{ campaign: string }>('SELECT campaign FROM registrations WHERE id = $1', [
        id,
      ])
      const campaign = a.rows[0] ? config.campaigns.get(a.rows[0].campaign) : undefined
      if (!campaign?.scarce) {
        process.stderr.write(
          `${id} is not a registration of a campaign with a capacity in this configuration\n`,
        )
        return 1
      }
      const r = await releasePlace(pool, campaign, id, by)
      ctx.log.info(
        {
          event: 'draw.released',
          campaign: campaign.slug,
          released: r.released,
          promoted: r.promoted,
          by: r.releasedBy,
        },
        'place released',
      )
      out({ ...r, campaign: campaign.slug })
      return 0
    }
    const campaign = values.campaign ? config.campaigns.get(values.campaign) : undefined
    if (campaign?.scarce?.allocation !== 'lottery') {
      const lotteries = [...config.campaigns.values()].filter((c) => c.scarce?.allocation === 'lottery')
      process.stderr.write(
        `--campaign must name a lottery campaign (lotteries: ${lotteries.map((c) => c.slug).join(', ') || 'none'})\n`,
      )
      return 2
    }
    if (sub === 'commit') {
      const existing = await findDraw(pool, campaign.slug)
      if (!existing && campaign.opensAt !== null && Date.now() >= campaign.opensAt) {
        process.stderr.write(
          `campaign ${campaign.slug} opened at ${new Date(campaign.opensAt).toISOString()}: a seed fixed now could be chosen knowing the entrants\n`,
        )
        return 1
      }
      // Without opens_at the campaign is open from the start: no entrant may exist yet either.
      const entrants = await pool.query<{ n: number }>(
        `SELECT ((SELECT count(*) FROM registrations WHERE campaign = $1)
               + (SELECT count(*) FROM waiting WHERE campaign = $1))::int AS n`,
        [campaign.slug],
      )
      if (!existing && entrants.rows[0]!.n > 0) {
        process.stderr.write(
          `campaign ${campaign.slug} already has ${entrants.rows[0]!.n} registration(s): a seed fixed now could be chosen knowing the entrants\n`,
        )
        return 1
      }
      const c = await commitDraw(pool, campaign.slug, by)
      ctx.log.info(
        { event: 'draw.committed', campaign: campaign.slug, commitment: c.commitment },
        'draw committed',
      )
      out({
        campaign: campaign.slug,
        commitment: c.commitment,
        committed_at: c.committedAt,
        created: c.created,
      })
      return 0
    }
    if (sub === 'run') {
      const s = await drawLottery(pool, campaign, by)
      ctx.log.info({ event: 'draw.ran', ...s }, s.ran ? 'draw ran' : 'draw had run already')
      out(s)
      return 0
    }
    // export
    const results = await loadResults(pool, campaign.slug)
    if (!results) {
      process.stderr.write(`campaign ${campaign.slug} is not drawn yet\n`)
      return 1
    }
    const text = `${JSON.stringify(results)}\n`
    if (values.out) {
      writeFileSync(values.out, text)
      out({ campaign: campaign.slug, participants: results.participants.length, file: values.out })
    } else process.stdout.write(text)
    return 0
  } catch (err) {
    if (err instanceof DrawRefused) {
      process.stderr.write(`sabt draw ${sub}: ${err.message}\n`)
      return 1
    }
    throw err
  } finally {
    await pool.end()
  }
}
