import type { SabtConfig } from '../../config/campaigns.js'
import type { Pool } from '../../db/pool.js'
import { Periodic } from '../../lib/periodic.js'
import type { MqClient } from '../../mq/connection.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import type { Redirector } from './redirect.js'

export interface SweeperDeps {
  mq: MqClient
  pool: Pool
  config: SabtConfig
  redirect: Redirector
  metrics: Metrics
  log: Logger
}

/**
 * A sweep of what the database says is owed (the verdict callbacks, the citizens' messages), every
 * `everyMs`, by any checker process: the rows are claimed with SKIP LOCKED, and a claim lapses
 * after `leaseMs`, so a message lost with its process is due again. A sweep that fails is logged as
 * `failedEvent` and the next one tries again.
 */
export abstract class Sweeper {
  readonly #periodic: Periodic<number>

  constructor(
    readonly deps: SweeperDeps,
    readonly opts: { everyMs: number; leaseMs: number },
    failedEvent: string,
  ) {
    this.#periodic = new Periodic(
      () => this.sweepOnce(),
      opts.everyMs,
      (err) => deps.log.warn({ event: failedEvent, err: (err as Error).message }),
    )
  }

  /** Whether this configuration owes anything this sweeper sends (if not, start does nothing). */
  protected owesAnything(): boolean {
    return true
  }

  start(): void {
    if (this.owesAnything()) this.#periodic.start()
  }

  stop(): Promise<void> {
    return this.#periodic.stop()
  }

  /** One sweep now (or the one in progress): the number of messages published. */
  sweep(): Promise<number> {
    return this.#periodic.run()
  }

  protected abstract sweepOnce(): Promise<number>
}
