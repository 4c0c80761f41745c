import { createPool } from '../../db/pool.js'
import { ProofOfWork } from '../../http/proof-of-work.js'
import { need, type RoleContext } from '../role.js'
import { challengeRoutes } from './challenge.js'
import { citizenPageRoutes } from './citizen-page.js'
import { ClientLimit } from './client-limit.js'
import { Intake } from './intake.js'
import { PartnerKeys } from './partners.js'
import { gatewayRoutes } from './routes.js'

export interface StartedGateway {
  /** Whether the intake can publish (the readiness component `intake`). */
  ready(): boolean
}

/**
 * The gateway: validates registrations and publishes them to the intake queues in group commits,
 * answering 202 only once the broker has confirmed them. It never waits on the database: partner
 * keys are read in the background.
 */
export async function startGateway(ctx: RoleContext): Promise<StartedGateway> {
  const { env, config, log, metrics } = ctx
  const mq = need(ctx.mq, 'gateway', 'a broker connection')
  const publisher = await ctx.publisher('intake')
  // With SABT_SEAL_AT=gateway personal data is sealed before it reaches the broker.
  const sealer = env.SABT_SEAL_AT === 'gateway' ? need(ctx.sealer, 'gateway', 'the data keys') : null
  const intake = new Intake(mq, publisher, metrics, sealer, {
    shards: env.SABT_INTAKE_SHARDS,
    retryAfterS: env.SABT_RETRY_AFTER_S,
    maxInFlight: env.SABT_PUBLISH_MAX_IN_FLIGHT,
    batchMaxRecords: env.SABT_INTAKE_BATCH_MAX_RECORDS,
    batchMaxBytes: env.SABT_INTAKE_BATCH_MAX_BYTES,
    lingerMs: env.SABT_INTAKE_LINGER_MS,
    lingerRecords: env.SABT_INTAKE_LINGER_RECORDS,
    log,
  })
  // A stopping gateway sends at once what lingers, before its in-flight requests are awaited.
  ctx.app.addHook('preClose', async () => intake.flush())
  const keysPool = ctx.pool ?? createPool(env.DATABASE_URL, { max: 2, log, name: 'sabt-gateway-keys' })
  const partners = new PartnerKeys(keysPool, log)
  await partners.start()
  ctx.onStop(async () => {
    partners.stop()
    if (keysPool !== ctx.pool) await keysPool.end().catch(() => {})
  })
  const proofOfWork = new ProofOfWork(env.SABT_POW_SECRET)
  if (!env.SABT_POW_SECRET && [...config.campaigns.values()].some((c) => c.proofOfWork))
    log.warn(
      { event: 'gateway.pow_secret_generated' },
      'SABT_POW_SECRET is not set: challenges are signed by a key of this process only (one gateway)',
    )
  await ctx.app.register(challengeRoutes, { config, proofOfWork })
  await ctx.app.register(citizenPageRoutes)
  await ctx.app.register(gatewayRoutes, {
    proofOfWork,
    config,
    intake,
    metrics,
    publicUrl: env.PUBLIC_URL ?? '',
    retryAfterS: env.SABT_RETRY_AFTER_S,
    batchBodyLimit: env.SABT_BATCH_BODY_LIMIT,
    batchMaxRecords: env.SABT_BATCH_MAX_RECORDS,
    partners,
    clientLimit:
      env.SABT_CLIENT_RATE > 0
        ? new ClientLimit(env.SABT_CLIENT_RATE, env.SABT_CLIENT_BURST, env.SABT_CLIENT_TRACKED)
        : null,
  })
  return { ready: () => publisher.ready }
}
