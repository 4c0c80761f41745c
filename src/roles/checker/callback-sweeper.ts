import type { SabtConfig } from '../../config/campaigns.js'
import { claimDueCallbacks } from '../../db/checks.js'
import type { Pool } from '../../db/pool.js'
import { groupBy, Periodic } from '../../lib/periodic.js'
import type { MqClient } from '../../mq/connection.js'
import { chunk } from '../../mq/messages.js'
import { CALLBACK } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import type { Redirector } from './redirect.js'

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
export class CallbackSweeper {
  readonly #periodic: Periodic<number>

  constructor(
    readonly deps: {
      mq: MqClient
      pool: Pool
      config: SabtConfig
      redirect: Redirector
      metrics: Metrics
      log: Logger
    },
    readonly opts: { everyMs: number; leaseMs: number },
  ) {
    this.#periodic = new Periodic(
      () => this.#sweep(),
      opts.everyMs,
      (err) => deps.log.warn({ event: 'callback.sweep_failed', err: (err as Error).message }),
    )
  }

  start(): void {
    const campaigns = [...this.deps.config.campaigns.values()].filter((c) => c.callbackUrl)
    if (campaigns.length === 0) return // no campaign here has a callback to owe
    this.#periodic.start()
  }

  stop(): Promise<void> {
    return this.#periodic.stop()
  }

  /** One sweep now (or the one in progress): the number of messages published. */
  sweep(): Promise<number> {
    return this.#periodic.run()
  }

  async #sweep(): Promise<number> {
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
