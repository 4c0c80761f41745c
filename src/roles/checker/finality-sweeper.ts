import { firstComeFrontier, markFirstComeFinal } from '../../db/draws.js'
import { Sweeper, type SweeperDeps } from './sweeper.js'

/**
 * first_come places become final when nothing received before them is unsettled or still in the
 * intake (decision 022) — usually after their own verdict, when an earlier registration settles or
 * the recorders move the intake watermark. Every `everyMs` one sweep (of any checker) finds the
 * records whose place became final since and owes each, once, its callback carrying the place and
 * its citizen's allocation message (the callback and outbox sweepers send them).
 */
export class FinalitySweeper extends Sweeper {
  /** Per campaign, the frontier of the last sweep: no duplicate below it can hold the next one back. */
  readonly #since = new Map<string, Date>()

  constructor(deps: SweeperDeps, opts: { everyMs: number; leaseMs: number }) {
    super(deps, opts, 'finality.sweep_failed')
  }

  protected override owesAnything(): boolean {
    return this.#firstCome().length > 0
  }

  #firstCome() {
    return [...this.deps.config.campaigns.values()].filter((c) => c.scarce?.allocation === 'first_come')
  }

  protected async sweepOnce(): Promise<number> {
    const { pool, metrics } = this.deps
    let marked = 0
    for (const campaign of this.#firstCome()) {
      const frontier = await firstComeFrontier(pool, campaign.slug, this.#since.get(campaign.slug) ?? null)
      if (!frontier) continue
      const ids = await markFirstComeFinal(pool, campaign, frontier)
      if (ids.length > 0) metrics.allocationsFinal.inc({ campaign: campaign.slug }, ids.length)
      marked += ids.length
      this.#since.set(campaign.slug, frontier)
    }
    return marked
  }
}
