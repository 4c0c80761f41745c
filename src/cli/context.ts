import type { Env } from '../config/env.js'
import type { Logger } from '../observability/logger.js'

/** What every `sabt` subcommand gets: the validated environment and a logger (src/cli/<command>.ts). */
export interface CliContext {
  env: Env
  log: Logger
}
