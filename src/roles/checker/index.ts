import { pruneCache } from '../../db/checks.js'
import { NOTICE_KINDS } from '../../db/citizen.js'
import { idsPerCheckMessage } from '../../mq/messages.js'
import { need, type RoleContext, type RoleDeps, roleDeps } from '../role.js'
import { CallbackSweeper } from './callback-sweeper.js'
import { CallbackTask } from './callback-task.js'
import { CheckTask } from './check-task.js'
import { DeadLetterInbox } from './dead-inbox.js'
import { FinalitySweeper } from './finality-sweeper.js'
import { OutboxSweeper } from './outbox-sweeper.js'
import { TokenCaches } from './providers/auth.js'
import type { Provider } from './providers/index.js'
import { Redirector } from './redirect.js'
import { NoticeTask, OtpTask, SmsSender } from './sms.js'
import { Worker } from './worker.js'

export interface CheckerDeps extends RoleDeps {
  /** The configuration's providers, compiled and their samples checked (compileProviders). */
  providers: ReadonlyMap<string, Provider>
  /** The clock OAuth2 token expiry is judged by (tests move it forward). */
  tokenClock?: () => number
  callbackSecret: string
  /** How often pending callbacks are looked for, and how long one is left to its message first. */
  callbackSweepMs: number
  callbackLeaseMs: number
  /** The outbox of SMS to citizens (decision 021): how often it is swept, how long a message is left to its own message. */
  smsSweepMs?: number
  smsLeaseMs?: number
  /** How often first_come places that became final are looked for (decision 022). */
  finalitySweepMs?: number
}

/**
 * The checker: one worker per check queue (each with its own concurrency, rate limit and circuit
 * breaker, so one slow or dead provider never slows the others), the verdict-callback worker and
 * its sweeper (callbacks owed by the database), and the dead-letter inbox (every dead letter
 * booked, whatever sent it).
 */
export class Checker {
  readonly tasks = new Map<string, CheckTask>()
  readonly workers: Worker[] = []
  readonly callback: CallbackTask
  readonly sweeper: CallbackSweeper
  /** first_come places that became final: their callbacks and allocation messages owed. */
  readonly finality: FinalitySweeper
  readonly inbox: DeadLetterInbox
  readonly tokens: TokenCaches
  /** Messages to citizens, when the configuration has an `sms:` provider. */
  readonly sms: { sender: SmsSender; sweeper: OutboxSweeper } | null = null
  #pruner: NodeJS.Timeout | null = null

  constructor(
    readonly deps: CheckerDeps,
    readonly only?: readonly string[],
  ) {
    const redirect = new Redirector(deps.mq, deps.publisher, deps.metrics)
    // Follow-ups travel grouped, each target check's own size (a callback: 200 per message).
    const idsFor = (check: string) => {
      const c = deps.config.checks.get(check)
      return c ? idsPerCheckMessage(c) : 200
    }
    // One token per OAuth2 client for the whole process, whichever checks use it.
    const tokens = new TokenCaches(deps.tokenClock ?? Date.now, (host) =>
      deps.metrics.oauthTokenFetches.inc({ host }),
    )
    this.tokens = tokens
    for (const check of deps.config.checks.values()) {
      if (only && !only.includes(check.name)) continue
      const provider = deps.providers.get(check.provider)
      if (!provider) throw new Error(`check ${check.name}: provider ${check.provider} was not compiled`)
      const task = new CheckTask(check, provider, { ...deps, tokens })
      this.tasks.set(check.name, task)
      this.workers.push(new Worker(task, deps.mq, redirect, deps.log, idsFor))
    }
    this.callback = new CallbackTask({ ...deps, secret: deps.callbackSecret, leaseMs: deps.callbackLeaseMs })
    this.workers.push(new Worker(this.callback, deps.mq, redirect, deps.log, idsFor))
    this.sweeper = new CallbackSweeper(
      { ...deps, redirect },
      { everyMs: deps.callbackSweepMs, leaseMs: deps.callbackLeaseMs },
    )
    this.finality = new FinalitySweeper(
      { ...deps, redirect },
      { everyMs: deps.finalitySweepMs ?? 2000, leaseMs: deps.callbackLeaseMs },
    )
    this.inbox = new DeadLetterInbox(deps, redirect)
    if (deps.config.sms && !only) {
      const sender = new SmsSender(deps.config.sms, deps)
      const smsDeps = { ...deps, leaseMs: deps.smsLeaseMs ?? 300_000 }
      // The one-time codes first: their own queue and consumer, served before receipts by the gate.
      this.workers.push(new Worker(new OtpTask(sender, smsDeps), deps.mq, redirect, deps.log, idsFor))
      for (const kind of NOTICE_KINDS)
        this.workers.push(
          new Worker(new NoticeTask(kind, sender, smsDeps), deps.mq, redirect, deps.log, idsFor),
        )
      const sweeper = new OutboxSweeper(
        { ...deps, redirect },
        { everyMs: deps.smsSweepMs ?? 1000, leaseMs: smsDeps.leaseMs },
      )
      this.sms = { sender, sweeper }
    }
  }

  async start(): Promise<void> {
    await this.inbox.start()
    for (const w of this.workers) await w.start()
    this.sweeper.start()
    if (!this.only) this.finality.start()
    this.sms?.sweeper.start()
    const longestTtl = Math.max(0, ...[...this.deps.config.checks.values()].map((c) => c.cache_ttl_s))
    if (longestTtl > 0) {
      this.#pruner = setInterval(() => {
        pruneCache(this.deps.pool, longestTtl).catch(() => {})
      }, 600_000)
      this.#pruner.unref()
    }
  }

  async stop(): Promise<void> {
    if (this.#pruner) clearInterval(this.#pruner)
    await this.sweeper.stop()
    await this.finality.stop()
    await this.sms?.sweeper.stop()
    await Promise.all(this.workers.map((w) => w.stop()))
    await this.inbox.stop()
    for (const t of this.tasks.values()) await t.close()
    await this.callback.close()
    await this.sms?.sender.close()
  }
}

/**
 * The checker role's start: every configured check (or only SABT_CHECKS), callbacks and the inbox.
 * `providers` are the configuration's, compiled (and their samples checked) before any role started.
 */
export async function startChecker(
  ctx: RoleContext,
  extra: Pick<CheckerDeps, 'providers' | 'tokenClock'>,
): Promise<Checker> {
  const { env } = ctx
  const only = env.SABT_CHECKS?.split(',')
    .map((c) => c.trim())
    .filter(Boolean)
  const checker = new Checker(
    {
      ...(await roleDeps(ctx, 'checker', 'checker')),
      ...extra,
      callbackSecret: need(ctx.secrets, 'checker', 'the secrets').callbackSecret,
      callbackSweepMs: env.SABT_CALLBACK_SWEEP_MS,
      callbackLeaseMs: env.SABT_CALLBACK_LEASE_MS,
      smsSweepMs: env.SABT_SMS_SWEEP_MS,
      finalitySweepMs: env.SABT_FINALITY_SWEEP_MS,
      smsLeaseMs: env.SABT_SMS_LEASE_MS,
    },
    only,
  )
  await checker.start()
  ctx.onStop(() => checker.stop())
  return checker
}
