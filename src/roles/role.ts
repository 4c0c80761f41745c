import type { FastifyInstance } from 'fastify'
import type { SabtConfig } from '../config/campaigns.js'
import type { Env } from '../config/env.js'
import type { Secrets } from '../config/secrets.js'
import type { Pool } from '../db/pool.js'
import type { MqClient } from '../mq/connection.js'
import type { Publisher } from '../mq/publisher.js'
import type { Logger } from '../observability/logger.js'
import type { Metrics } from '../observability/metrics.js'
import type { Sealer } from '../privacy/sealing.js'

/**
 * What the process gives every role it starts (the one dependencies type): each role's entry,
 * `src/roles/<role>/index.ts`, has one start function taking this. What a role does not need is
 * null — the wiring (`src/runtime/start.ts`) opens only what the process's roles use.
 */
export interface RoleContext {
  env: Env
  config: SabtConfig
  log: Logger
  metrics: Metrics
  /** The process's one HTTP server: a role registers its routes as Fastify plugins on it. */
  app: FastifyInstance
  mq: MqClient | null
  pool: Pool | null
  /** The status role's reads (a replica with DATABASE_READ_URL; otherwise the primary pool). */
  readPool: Pool | null
  sealer: Sealer | null
  secrets: Secrets | null
  /** A started publisher with this name, closed after the role that asked for it has stopped. */
  publisher(name: string): Promise<Publisher>
  /** Run when the process stops, in reverse order of registration. */
  onStop(stop: () => Promise<void>): void
}

/** Asserts a role got what it cannot run without (a wiring mistake, not an operator's). */
export function need<T>(value: T | null | undefined, role: string, what: string): T {
  if (value === null || value === undefined) throw new Error(`${role} role started without ${what}`)
  return value
}

/**
 * What a role's long-running parts share (the recorder, the checker and its tasks), once its
 * entry has checked the context: nothing optional.
 */
export interface RoleDeps {
  mq: MqClient
  pool: Pool
  publisher: Publisher
  config: SabtConfig
  sealer: Sealer
  metrics: Metrics
  log: Logger
}

/** The RoleDeps of a role that needs the broker, the database and the data keys, with its own publisher. */
export async function roleDeps(ctx: RoleContext, role: string, publisherName: string): Promise<RoleDeps> {
  return {
    mq: need(ctx.mq, role, 'a broker connection'),
    pool: need(ctx.pool, role, 'a database pool'),
    publisher: await ctx.publisher(publisherName),
    config: ctx.config,
    sealer: need(ctx.sealer, role, 'the data keys'),
    metrics: ctx.metrics,
    log: ctx.log,
  }
}
