import { AdminAuth } from '../../http/auth.js'
import { SignInLockout } from '../../http/lockout.js'
import { startRetentionSweeper } from '../../operations/index.js'
import { need, type RoleContext } from '../role.js'
import { adminRoutes } from './admin.js'
import { campaignRoutes } from './campaigns.js'
import { citizenRoutes } from './citizen.js'
import { dashboardRoutes } from './dashboard.js'
import { LiveStats } from './live.js'
import { statusRoutes } from './routes.js'

export interface StartedStatus {
  /** The live numbers the dashboard shows (from every process's stats snapshots). */
  live: LiveStats
}

/**
 * The status role: the public status API (from the replica when there is one), the operator's
 * admin API and dashboard, the live numbers behind them, and the retention sweeper. It needs only
 * the database to be ready — the dashboard must stay up when the broker is what broke.
 */
export async function startStatus(ctx: RoleContext): Promise<StartedStatus> {
  const { env, config, log, metrics } = ctx
  const pool = need(ctx.pool, 'status', 'a database pool')
  const readPool = ctx.readPool ?? pool
  const mq = need(ctx.mq, 'status', 'a broker connection')
  const sealer = need(ctx.sealer, 'status', 'the data keys')
  const adminToken = need(ctx.secrets, 'status', 'the secrets').adminToken
  const queuedWindowMs = env.SABT_QUEUED_WINDOW_S * 1000

  await ctx.app.register(statusRoutes, { pool: readPool, primary: pool, config, queuedWindowMs, metrics })
  await ctx.app.register(campaignRoutes, { pool: readPool, config, metrics })
  const publisher = await ctx.publisher('admin')
  if (env.SABT_ERASE_EVERY_S > 0) ctx.onStop(startRetentionSweeper(pool, config, log, env.SABT_ERASE_EVERY_S))
  const live = new LiveStats({ mq, pool: readPool, config, metrics, log })
  await live.start()
  ctx.onStop(() => live.stop())
  const auth = new AdminAuth(pool, adminToken, {
    secureCookie: env.SABT_COOKIE_SECURE,
    lockout: new SignInLockout(env.SABT_LOGIN_MAX_FAILURES, env.SABT_LOGIN_WINDOW_S),
  })
  await ctx.app.register(citizenRoutes, {
    pool,
    readPool,
    mq,
    publisher,
    config,
    sealer,
    log,
    queuedWindowMs,
    codeTtlS: env.SABT_LOOKUP_CODE_TTL_S,
    limits: {
      perNationalIdPerDay: env.SABT_LOOKUP_PER_ID_PER_DAY,
      perMobilePerDay: env.SABT_LOOKUP_PER_MOBILE_PER_DAY,
      perClientPerHour: env.SABT_LOOKUP_PER_CLIENT_PER_HOUR,
    },
    smsLeaseMs: 30_000,
  })
  const operator = { mq, pool, readPool, publisher, config, log, auth, live, sealer, queuedWindowMs }
  await ctx.app.register(adminRoutes, operator)
  await ctx.app.register(dashboardRoutes, operator)
  return { live }
}
