import { claimDueNotices, claimDueOtps, NOTICE_KINDS } from '../../db/citizen.js'
import { groupBy } from '../../lib/periodic.js'
import { chunk } from '../../mq/messages.js'
import { SMS_ROUTES } from '../../mq/topology.js'
import { Sweeper, type SweeperDeps } from './sweeper.js'

const CLAIM = 2000
const IDS_PER_MESSAGE = 200
/** Records in a notice queue (receipt, verdict, allocation) past which the sweeper waits (late, not lost). */
const MAX_QUEUED_MESSAGES = 500

/**
 * The outbox of messages to citizens is driven from the database (decision 021): every
 * `everyMs`, one sweeper (of any checker: rows are claimed with SKIP LOCKED) publishes the owed
 * messages that are due — new receipts, verdicts and a lottery's allocations (their rows made by
 * the triggers of migrations 0011 and 0014 in the recording's, the verdict's or the draw's own
 * transaction), and those whose message was lost (due again a lease later). The SMS task sends
 * only what is still pending.
 */
export class OutboxSweeper extends Sweeper {
  constructor(deps: SweeperDeps, opts: { everyMs: number; leaseMs: number }) {
    super(deps, opts, 'outbox.sweep_failed')
  }

  protected async sweepOnce(): Promise<number> {
    const { mq, pool, config, redirect, metrics } = this.deps
    const campaigns = [...config.campaigns.values()].filter((c) => c.messages).map((c) => c.slug)
    let published = 0
    const otps = await claimDueOtps(pool, this.opts.leaseMs, CLAIM)
    for (const [campaign, ids] of groupByCampaign(otps))
      for (const g of chunk(ids, 50)) await redirect.toCheck(SMS_ROUTES.otp, campaign, g)
    published += otps.length
    if (otps.length > 0) metrics.citizenMessagesSwept.inc({ kind: 'otp' }, otps.length)
    if (campaigns.length === 0) return published
    for (let round = 0; round < 50; round++) {
      const depths = await Promise.all(NOTICE_KINDS.map((k) => mq.queueDepth(mq.names.smsQueues[k])))
      if (depths.some((d) => !d || d.messages >= MAX_QUEUED_MESSAGES)) break
      const due = await claimDueNotices(pool, campaigns, this.opts.leaseMs, CLAIM)
      for (const kind of NOTICE_KINDS) {
        const mine = due.filter((d) => d.kind === kind)
        for (const [campaign, ids] of groupByCampaign(mine))
          await Promise.all(
            chunk(ids, IDS_PER_MESSAGE).map((g) => redirect.toCheck(SMS_ROUTES[kind], campaign, g)),
          )
        if (mine.length > 0) metrics.citizenMessagesSwept.inc({ kind }, mine.length)
      }
      published += due.length
      if (due.length < CLAIM) break
    }
    return published
  }
}

const groupByCampaign = (rows: readonly { id: string; campaign: string }[]) =>
  groupBy(
    rows,
    (r) => r.campaign,
    (r) => r.id,
  )
