import type { FastifyInstance } from 'fastify'
import { defaultConfigPath, loadConfigFile, type SabtConfig } from '../config/campaigns.js'
import type { Env } from '../config/env.js'
import { resolveSecrets } from '../config/secrets.js'
import { migrate } from '../db/migrate.js'
import { createPool, type Pool } from '../db/pool.js'
import { syncCampaigns } from '../db/registrations.js'
import { buildServer, type Readiness } from '../http/server.js'
import { MqClient } from '../mq/connection.js'
import { Publisher } from '../mq/publisher.js'
import type { TopologyOptions } from '../mq/topology.js'
import { createLogger, type Logger } from '../observability/logger.js'
import { Metrics } from '../observability/metrics.js'
import { Sealer } from '../privacy/sealing.js'
import { Intake } from '../roles/gateway/intake.js'
import { gatewayRoutes } from '../roles/gateway/routes.js'
import { Recorder } from '../roles/recorder/index.js'
import { statusRoutes } from '../roles/status/routes.js'

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
}

export interface Running {
  roles: readonly Role[]
  env: Env
  config: SabtConfig
  log: Logger
  metrics: Metrics
  app: FastifyInstance
  mq: MqClient | null
  pool: Pool | null
  readPool: Pool | null
  recorder: Recorder | null
  /** The address the HTTP server listens on, when it does. */
  url: string | null
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
 * Starts the given roles in this process, sharing one broker connection, one database pool and
 * one HTTP server (health, readiness and metrics on every role; the API on gateway and status).
 */
export async function startSabt(opts: StartOptions): Promise<Running> {
  const { env, roles } = opts
  const log = opts.log ?? createLogger({ level: env.LOG_LEVEL })
  const config = opts.config ?? loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
  const metrics = new Metrics()
  const has = (r: Role) => roles.includes(r)
  const needsDb = has('recorder') || has('checker') || has('status')
  const needsMq = has('gateway') || has('recorder') || has('checker')
  const stops: Array<() => Promise<void>> = []

  if (needsDb && opts.migrate) await migrate(env.DATABASE_URL, log)

  const pool = needsDb
    ? createPool(env.DATABASE_URL, { max: env.DATABASE_POOL_SIZE, log, name: `sabt-${roles.join('+')}` })
    : null
  const readPool =
    has('status') && env.DATABASE_READ_URL
      ? createPool(env.DATABASE_READ_URL, { max: env.DATABASE_POOL_SIZE, log, name: 'sabt-status-read' })
      : pool
  if (pool && opts.migrate) await syncCampaigns(pool, config.campaigns.values())

  const mq = needsMq
    ? new MqClient(env.AMQP_URL, topologyOptions(env, config), log, `sabt-${roles.join('+')}-${process.pid}`)
    : null
  if (mq) await mq.start()

  let recorder: Recorder | null = null
  let gatewayPublisher: Publisher | null = null

  const readiness = async (): Promise<Readiness> => {
    const components: Record<string, 'up' | 'down'> = {}
    if (mq) components.broker = mq.connected ? 'up' : 'down'
    if (gatewayPublisher) components.intake = gatewayPublisher.ready ? 'up' : 'down'
    if (pool) components.database = (await dbReachable(pool)) ? 'up' : 'down'
    if (readPool && readPool !== pool)
      components.database_read = (await dbReachable(readPool)) ? 'up' : 'down'
    return { ready: Object.values(components).every((c) => c === 'up'), components }
  }

  const app = await buildServer({
    log,
    metrics,
    bodyLimit: env.SABT_BODY_LIMIT,
    requestTimeoutMs: env.SABT_REQUEST_TIMEOUT_MS,
    headersTimeoutMs: env.SABT_HEADERS_TIMEOUT_MS,
    maxHeaderBytes: env.SABT_MAX_HEADER_BYTES,
    maxConnections: env.SABT_MAX_CONNECTIONS,
    readiness,
    roles,
  })

  if (has('gateway') && mq) {
    gatewayPublisher = new Publisher(
      mq,
      {
        name: 'intake',
        confirmTimeoutMs: env.SABT_CONFIRM_TIMEOUT_MS,
        maxInFlight: env.SABT_PUBLISH_MAX_IN_FLIGHT,
      },
      metrics,
      log,
    )
    await gatewayPublisher.start()
    const intake = new Intake(mq, gatewayPublisher, metrics, {
      shards: env.SABT_INTAKE_SHARDS,
      retryAfterS: env.SABT_RETRY_AFTER_S,
    })
    await app.register(gatewayRoutes, {
      config,
      intake,
      metrics,
      publicUrl: env.PUBLIC_URL ?? '',
      retryAfterS: env.SABT_RETRY_AFTER_S,
      batchBodyLimit: env.SABT_BATCH_BODY_LIMIT,
      batchMaxRecords: env.SABT_BATCH_MAX_RECORDS,
    })
    const publisher = gatewayPublisher
    stops.push(() => publisher.close())
  }

  if (has('status') && readPool) {
    await app.register(statusRoutes, {
      pool: readPool,
      config,
      queuedWindowMs: env.SABT_QUEUED_WINDOW_S * 1000,
    })
  }

  if (has('recorder') && mq && pool) {
    const secrets = resolveSecrets(env)
    const publisher = new Publisher(
      mq,
      {
        name: 'checks',
        confirmTimeoutMs: env.SABT_CONFIRM_TIMEOUT_MS,
        maxInFlight: env.SABT_PUBLISH_MAX_IN_FLIGHT,
      },
      metrics,
      log,
    )
    await publisher.start()
    recorder = new Recorder(
      { mq, pool, publisher, config, sealer: new Sealer(secrets.dataKeys), metrics, log },
      { prefetch: env.SABT_RECORDER_PREFETCH, batchSize: env.SABT_BATCH_SIZE, batchMs: env.SABT_BATCH_MS },
    )
    await recorder.start()
    const r = recorder
    stops.push(async () => {
      await r.stop()
      await publisher.close()
    })
  }

  await app.ready()
  let url: string | null = null
  if (opts.listen !== false) {
    url = await app.listen({ host: env.HOST, port: env.PORT })
  }

  let stopped: Promise<void> | null = null
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      // 1. Stop accepting requests; in-flight ones finish (their publishes settle).
      await app.close()
      // 2. Roles, in reverse start order: the recorder writes and acks what it holds.
      for (const s of stops.reverse())
        await s().catch((err) => log.warn({ event: 'stop_failed', err: (err as Error).message }))
      await mq?.close()
      if (readPool && readPool !== pool) await readPool.end().catch(() => {})
      await pool?.end().catch(() => {})
    })()
    return stopped
  }

  return { roles, env, config, log, metrics, app, mq, pool, readPool, recorder, url, stop }
}
