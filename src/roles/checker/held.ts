import type { HeldReason } from '../../config/campaigns.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import { ParkError } from './worker.js'

/**
 * How long a held message waits before it is looked at again (the delay tier at least this long).
 * A held record (configuredFor in src/config/campaigns.ts) waits there and comes back, no attempt
 * spent, nothing decided, until a process whose configuration has its campaign takes it. Every
 * hold is counted (sabt_checks_held_total, on the dashboard) and logged.
 */
export const HOLD_MS = 10_000

const DESCRIBE: Record<HeldReason, (campaign: string, check: string) => string> = {
  unknown_campaign: (campaign) => `campaign ${campaign} is not in this configuration`,
  check_not_in_campaign: (campaign, check) =>
    `campaign ${campaign} does not require check ${check} in this configuration`,
}

export function describeHeld(reason: HeldReason, campaign: string, check: string): string {
  return DESCRIBE[reason](campaign, check)
}

const LOG_EVERY_MS = 60_000

export class Holds {
  readonly #logged = new Map<string, number>()

  constructor(
    readonly metrics: Metrics,
    readonly log: Logger,
  ) {}

  /** Counts `n` records held; warns once a minute per (check, campaign). Returns the ParkError that parks them. */
  hold(check: string, campaign: string, reason: HeldReason, n = 1): ParkError {
    this.metrics.checksHeld.inc({ check, campaign, reason }, n)
    const message = describeHeld(reason, campaign, check)
    const key = `${check}\u0000${campaign}`
    const now = Date.now()
    if (now - (this.#logged.get(key) ?? 0) >= LOG_EVERY_MS) {
      this.#logged.set(key, now)
      this.log.warn(
        { event: 'checker.held', check, campaign, reason },
        `${message}: its records are held, not decided, until a checker configured for it takes them`,
      )
    }
    return new ParkError('unconfigured', HOLD_MS, message)
  }
}
