import { defaultConfigPath, loadConfigFile, type SabtConfig } from '../config/campaigns.js'
import { type Env, parseTrustProxy } from '../config/env.js'
import { compileProviders } from '../config/providers.js'
import { resolveSecrets, secretsFor } from '../config/secrets.js'
import { listenError } from '../config/startup.js'
import { migrate } from '../db/migrate.js'
import { createPool, type Pool } from '../db/pool.js'
import { probeDatabase } from '../db/probe.js'
import { syncCampaigns } from '../db/registrations.js'
import { buildServer, type Readiness } from '../http/server.js'
import { MqClient } from '../mq/connection.js'
import { Publisher } from '../mq/publisher.js'
import type { TopologyOptions } from '../mq/topology.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { Metrics } from '../observability/metrics.js'
import { StatsPublisher } from '../observability/snapshots.js'
import { Sealer } from '../privacy/sealing.js'
import { type Checker, startChecker } from '../roles/checker/index.js'
import { type StartedGateway, startGateway } from '../roles/gateway/index.js'
import { type Recorder, startRecorder } from '../roles/recorder/index.js'
import { need, type RoleContext } from '../roles/role.js'
import { type StartedSimulator, startSimulator } from '../roles/simulator/index.js'
import { type StartedStatus, startStatus } from '../roles/status/index.js'

export const ROLES = ['gateway', 'recorder', 'checker', 'status', 'simulator'] as const
export type Role = (typeof ROLES)[number]

export function parseRoles(spec: string): Role[] {
  if (spec === 'all') return [...ROLES]
  const roles = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const r of roles)
    if (!ROLES.includes(r as Role)) throw new Error(`unknown role ${r} (roles: ${ROLES.join(', ')}, all)`)
  if (roles.length === 0) throw new Error('no role given')
  return [...new Set(roles)] as Role[]
}

export interface StartOptions {
  roles: readonly Role[]
  env: Env
  config?: SabtConfig
  log?: Logger
  /** Apply pending migrations before starting (npm start does; production runs `sabt migrate`). */
  migrate?: boolean
  /** Listen on env.PORT (false: build the app for inject() only). */
  listen?: boolean
  /** Listen with the simulator even when listen is false (tests call it over HTTP). */
  listenSimulator?: boolean
  /** The clock OAuth2 token expiry is judged by (tests move it forward). */
  tokenClock?: () => number
}

/** A started process: what its roles were given (the shared part of their RoleContext), and the roles' handles. */
export interface Running
  extends Pick<RoleContext, 'env' | 'config' | 'log' | 'metrics' | 'app' | 'mq' | 'pool' | 'readPool'> {
  roles: readonly Role[]
  recorder: Recorder | null
  checker: Checker | null
  simulator: StartedSimulator['simulator'] | null
  /** The status role's live numbers (from every process's stats snapshots). */
  live: StartedStatus['live'] | null
  /** This process's stats snapshots, published once a second for the status role. */
  stats: StatsPublisher | null
  /** The simulator's address, when it listens. */
  simulatorUrl: string | null
  /** The address the HTTP server listens on, when it does. */
  url: string | null
  /** What /readyz answers: ready, and each component up or down. */
  readiness(): Promise<Readiness>
  stop(): Promise<void>
}

export function topologyOptions(env: Env, config: SabtConfig): TopologyOptions {
  return {
    prefix: env.SABT_MQ_PREFIX,
    intakeShards: env.SABT_INTAKE_SHARDS,
    intakeMaxLength: env.SABT_INTAKE_MAX_LENGTH,
    intakeDeliveryLimit: env.SABT_INTAKE_DELIVERY_LIMIT,
    checks: [...config.checks.keys()],
    retryTiersMs: config.retryTiersMs,
  }
}

async function dbReachable(pool: Pool): Promise<boolean> {
  try {
    await Promise.race([
      pool.query('SELECT 1'),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 1000)),
    ])
    return true
  } catch {
    return false
  }
}

/**
 * The databases the roles read and write, ready: a database that is not there stops the start
 * with one line that says what to do (for the roles that need it; a gateway alone takes
 * registrations without it, partner keys load later); migrations and the campaigns' rows when
 * asked (npm start); the status role's replica pool when DATABASE_READ_URL names one.
 */
async function openDatabases(o: {
  env: Env
  log: Logger
  config: SabtConfig
  roles: readonly Role[]
  migrate: boolean
}): Promise<{ pool: Pool | null; readPool: Pool | null }> {
  const { env, log, roles } = o
  const has = (r: Role) => roles.includes(r)
  const needsDb = has('recorder') || has('checker') || has('status')
  if (needsDb || (has('gateway') && o.migrate))
    await probeDatabase(env.DATABASE_URL, { willCreate: o.migrate })
  if ((needsDb || has('gateway')) && o.migrate) await migrate(env.DATABASE_URL, log)
  const pool = needsDb
    ? createPool(env.DATABASE_URL, { max: env.DATABASE_POOL_SIZE, log, name: `sabt-${roles.join('+')}` })
    : null
  const readPool =
    has('status') && env.DATABASE_READ_URL
      ? createPool(env.DATABASE_READ_URL, { max: env.DATABASE_POOL_SIZE, log, name: 'sabt-status-read' })
      : pool
  if (pool && o.migrate)
    await syncCampaigns(pool, o.config.campaigns.values(), { citizenSms: o.config.sms !== null })
  return { pool, readPool }
}

/**
 * Ready means: what this process's roles need is reachable. The status role needs only the
 * database — the dashboard must stay up when the broker is what broke. `intake` is the gateway's
 * (null: no gateway, or not started yet).
 */
function readinessOf(o: {
  mq: MqClient | null
  needsBroker: boolean
  intake: () => boolean | null
  pool: Pool | null
  readPool: Pool | null
}): () => Promise<Readiness> {
  return async () => {
    const components: Record<string, 'up' | 'down'> = {}
    const required: string[] = []
    if (o.mq) components.broker = o.mq.connected ? 'up' : 'down'
    if (o.needsBroker) required.push('broker')
    const intake = o.intake()
    if (intake !== null) {
      components.intake = intake ? 'up' : 'down'
      required.push('intake')
    }
    if (o.pool) {
      components.database = (await dbReachable(o.pool)) ? 'up' : 'down'
      required.push('database')
    }
    if (o.readPool && o.readPool !== o.pool) {
      components.database_read = (await dbReachable(o.readPool)) ? 'up' : 'down'
      required.push('database_read')
    }
    return { ready: required.every((c) => components[c] === 'up'), components }
  }
}

/**
 * Starts the given roles in this process, sharing one broker connection, one database pool and
 * one HTTP server (health, readiness and metrics on every role; the API on gateway and status).
 * It only composes: what a role does is in its entry, `src/roles/<role>/index.ts`. The simulator,
 * standing in for third parties, gets its own server and port.
 */
export async function startSabt(opts: StartOptions): Promise<Running> {
  const { env, roles } = opts
  const log = opts.log ?? createLogger({ level: env.LOG_LEVEL })
  const config = opts.config ?? loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
  // Every provider definition compiled and its sample answers checked before anything starts: a
  // mapping that mis-reads an answer stops the process here, naming the key.
  const providers = await compileProviders(
    config.providers,
    [...config.checks.values()].map((c) => c.provider),
    config.baseDir,
  )
  const metrics = new Metrics()
  const has = (r: Role) => roles.includes(r)
  const needsBroker = has('gateway') || has('recorder') || has('checker')
  const needsMq = needsBroker || has('status') // status: queue depths and replay
  const sealsAtGateway = has('gateway') && env.SABT_SEAL_AT === 'gateway'
  const needsSecrets = secretsFor(roles, env)
  const secrets = needsSecrets.length > 0 ? resolveSecrets(env, needsSecrets) : null
  const stops: Array<() => Promise<void>> = []
  const onStop = (stop: () => Promise<void>) => {
    stops.push(stop)
  }

  // The simulator first: with npm start, the checker in this same process calls it.
  const sim = has('simulator')
    ? await startSimulator(
        { env, log, secrets, onStop },
        { listen: opts.listen !== false || !!opts.listenSimulator },
      )
    : null

  const { pool, readPool } = await openDatabases({
    env,
    log,
    config,
    roles,
    migrate: opts.migrate ?? false,
  }).catch(async (err) => {
    await sim?.simulator.close().catch(() => {})
    throw err
  })
  // The recorder seals personal data (or the gateway, before it reaches the broker, with
  // SABT_SEAL_AT=gateway); the status role opens sealed fields only to show them masked.
  const sealer =
    secrets && (sealsAtGateway || has('recorder') || has('checker') || has('status'))
      ? new Sealer(secrets.dataKeys)
      : null

  const mq = needsMq
    ? new MqClient(env.AMQP_URL, topologyOptions(env, config), log, `sabt-${roles.join('+')}-${process.pid}`)
    : null
  if (mq) await mq.start()
  // Every process with a broker connection tells the status role what its counters say, once a
  // second. Stopped last (pushed first), so the roles' final numbers go out with it.
  const stats = mq ? new StatsPublisher(mq, metrics, log, { roles }) : null
  if (stats) onStop(() => stats.stop())

  let gateway: StartedGateway | null = null
  const readiness = readinessOf({ mq, needsBroker, intake: () => gateway?.ready() ?? null, pool, readPool })

  const app = await buildServer({
    log,
    metrics,
    bodyLimit: env.SABT_BODY_LIMIT,
    requestTimeoutMs: env.SABT_REQUEST_TIMEOUT_MS,
    headersTimeoutMs: env.SABT_HEADERS_TIMEOUT_MS,
    maxHeaderBytes: env.SABT_MAX_HEADER_BYTES,
    maxConnections: env.SABT_MAX_CONNECTIONS,
    trustProxy: parseTrustProxy(env.SABT_TRUST_PROXY),
    readiness,
    roles,
  })

  const shared = { env, config, log, metrics, app, mq, pool, readPool }
  const ctx: RoleContext = {
    ...shared,
    sealer,
    secrets,
    onStop,
    publisher: async (name) => {
      const p = new Publisher(
        need(mq, name, 'a broker connection'),
        { name, confirmTimeoutMs: env.SABT_CONFIRM_TIMEOUT_MS, maxInFlight: env.SABT_PUBLISH_MAX_IN_FLIGHT },
        metrics,
        log,
      )
      await p.start()
      onStop(() => p.close()) // before the role's own stop is registered: closed after it
      return p
    },
  }
  if (has('gateway')) gateway = await startGateway(ctx)
  const status = has('status') ? await startStatus(ctx) : null
  const checker = has('checker')
    ? await startChecker(ctx, { providers, ...(opts.tokenClock ? { tokenClock: opts.tokenClock } : {}) })
    : null
  const recorder = has('recorder') ? await startRecorder(ctx) : null

  await app.ready()
  stats?.start()
  let stopped: Promise<void> | null = null
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // 1. Stop accepting requests; in-flight ones finish (their publishes settle).
      await app.close()
      // 2. Roles, in reverse start order: the recorder writes and acks what it holds, the
      //    checker finishes its calls.
      for (const s of stops.reverse())
        await s().catch((err) => log.warn({ event: 'stop_failed', err: (err as Error).message }))
      await mq?.close()
      if (readPool && readPool !== pool) await readPool.end().catch(() => {})
      await pool?.end().catch(() => {})
    })()
    return stopped
  }

  let url: string | null = null
  if (opts.listen !== false)
    try {
      url = await app.listen({ host: env.HOST, port: env.PORT })
    } catch (err) {
      await stop()
      throw listenError(err, env.PORT, 'PORT', 'the HTTP API')
    }

  return {
    ...shared,
    roles,
    recorder,
    checker,
    simulator: sim?.simulator ?? null,
    live: status?.live ?? null,
    stats,
    simulatorUrl: sim?.url ?? null,
    url,
    readiness,
    stop,
  }
}
