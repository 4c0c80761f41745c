import { ConfigError } from '../../config/env.js'
import { listenError } from '../../config/startup.js'
import type { RoleContext } from '../role.js'
import { buildSimulator, type Simulator } from './server.js'

export interface StartedSimulator {
  simulator: Simulator
  /** Where it listens, when it does. */
  url: string | null
}

/**
 * The simulator role: the three third-party providers on their own server and port
 * (SABT_SIMULATOR_PORT), for development, tests and benchmarks. Started first, before the other
 * roles' server exists: with `npm start` the checker in the same process calls it.
 */
export async function startSimulator(
  ctx: Pick<RoleContext, 'env' | 'log' | 'secrets' | 'onStop'>,
  opts: { listen: boolean },
): Promise<StartedSimulator> {
  const { env, log } = ctx
  let knobs: Record<string, unknown> | undefined
  if (env.SABT_SIMULATOR_KNOBS) {
    try {
      knobs = JSON.parse(env.SABT_SIMULATOR_KNOBS) as Record<string, unknown>
    } catch {
      throw new ConfigError('SABT_SIMULATOR_KNOBS: not JSON')
    }
  }
  const simulator = await buildSimulator({
    log,
    adminToken: ctx.secrets?.adminToken ?? null,
    knobs: knobs as never,
  })
  ctx.onStop(() => simulator.close())
  const url = opts.listen
    ? await simulator
        .listen({ host: env.HOST, port: env.SABT_SIMULATOR_PORT })
        .catch(async (err: unknown) => {
          await simulator.close().catch(() => {})
          throw listenError(err, env.SABT_SIMULATOR_PORT, 'SABT_SIMULATOR_PORT', 'the provider simulator')
        })
    : null
  return { simulator, url }
}
