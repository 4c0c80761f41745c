import { claimDueCallbacks } from '../../db/checks.js'
import { groupBy } from '../../lib/periodic.js'
import { chunk } from '../../mq/messages.js'
import { CALLBACK } from '../../mq/topology.js'
import { Sweeper, type SweeperDeps } from './sweeper.js'

/** Callbacks claimed per sweep, and ids per callback message (the callback worker's own size). */
const CLAIM = 1000
const IDS_PER_MESSAGE = 200

/**
 * Verdict callbacks are driven from the database, not from the moment a verdict became final:
 * every few seconds one sweeper (of any checker process: rows are claimed with SKIP LOCKED) finds
 * the callbacks still `pending` a lease after they were due — their message lost to a publish
 * that failed or a checker killed after the commit — and sends them again. The callback task sends
 * only what is still pending, so a late original and its replacement POST once in the usual case;
 * a receiver may still see a retry, with the same `Idempotency-Key`.
 *
 * While the callback queue holds a backlog, the sweep waits: those callbacks are late, not lost,
 * and copies would only lengthen the queue.
 */
export class CallbackSweeper extends Sweeper {
  constructor(deps: SweeperDeps, opts: { everyMs: number; leaseMs: number }) {
    super(deps, opts, 'callback.sweep_failed')
  }

  protected override owesAnything(): boolean {
    return [...this.deps.config.campaigns.values()].some((c) => c.callbackUrl) // a callback to owe
  }

  protected async sweepOnce(): Promise<number> {
    const { mq, pool, config, redirect, metrics, log } = this.deps
    // Only campaigns this configuration can send for: others stay pending for a checker that can.
    const campaigns = [...config.campaigns.values()].filter((c) => c.callbackUrl).map((c) => c.slug)
    const depth = await mq.queueDepth(mq.names.callbackQueue)
    if (!depth || depth.messages >= CLAIM) return 0
    const due = await claimDueCallbacks(pool, campaigns, this.opts.leaseMs, CLAIM)
    if (due.length === 0) return 0
    const byCampaign = groupBy(
      due,
      (d) => d.campaign,
      (d) => d.id,
    )
    // A publish that fails leaves its rows claimed: the next lease brings them round again.
    await Promise.all(
      [...byCampaign].flatMap(([campaign, ids]) =>
        chunk(ids, IDS_PER_MESSAGE).map((group) => redirect.toCheck(CALLBACK, campaign, group)),
      ),
    )
    metrics.callbacksSwept.inc(due.length)
    log.info(
      { event: 'callback.swept', callbacks: due.length },
      `sent ${due.length} pending verdict callback(s) again`,
    )
    return due.length
  }
}
