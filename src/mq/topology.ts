import type { Channel, Options } from 'amqplib'

/**
 * Every exchange, queue and binding Sabt uses, declared in this one file.
 *
 *   sabt.intake (direct) ──shard i──▶ sabt.intake[.i]  quorum, bounded (reject-publish), delivery-limit
 *        └─ dead letters ─▶ sabt.intake.dlx (fanout) ─▶ sabt.intake.dead
 *   sabt.check (direct) ──<check>──▶ sabt.check.<check>  quorum, bounded, delivery-limit
 *        └─ dead letters ─▶ sabt.dead (fanout) ─▶ sabt.dead.inbox ─▶ the checker books them ─▶ sabt.dead
 *   sabt.check ──dead-inbox──▶ sabt.dead.inbox  (a dead letter held in a delay tier comes back here)
 *   sabt.retry (headers, tier=<label>) ─▶ sabt.retry.<label>  quorum, message TTL = tier,
 *        └─ expired ─▶ sabt.check, same routing key (the check's name) ─▶ back to its check queue
 *   sabt.check ──sms-receipt / -verdict / -allocation / -promotion / -otp──▶ sabt.sms.<kind>  quorum,
 *        dead letters and delay tiers as a check's (messages to citizens: one-time codes have a
 *        queue of their own, so a backlog of receipts never stands in front of them)
 *   sabt.stats (fanout, transient) ─▶ one exclusive auto-delete queue per status process
 *        every process's metrics snapshot once a second, for the dashboard; losing one is harmless
 *
 * Every dead letter of a check or a callback — sent by the checker after the last attempt, or by
 * RabbitMQ itself (delivery limit, a message refused unread) — reaches the inbox first, and the
 * checker books it (the check's `error`, the verdict recomputed) before moving it into `sabt.dead`
 * (through the default exchange): the queue an operator lists and replays from.
 *
 * Every queue is a quorum queue (replicated, fsynced before confirming). Dead-lettering is
 * at-least-once, which RabbitMQ allows only with `x-overflow: reject-publish` — the same setting
 * that turns a full queue into a publisher nack, and a nack into the gateway's 503.
 */
export interface TopologyOptions {
  prefix: string
  intakeShards: number
  intakeMaxLength: number
  intakeDeliveryLimit: number
  checks: readonly string[]
  retryTiersMs: readonly number[]
  checkMaxLength?: number
  checkDeliveryLimit?: number
}

/** The routing key (and reserved check name) of verdict callbacks. */
export const CALLBACK = 'callback'

/** The routing keys (and task names) of messages to citizens: hyphens, never a check's name. */
export const SMS_ROUTES = {
  receipt: 'sms-receipt',
  verdict: 'sms-verdict',
  allocation: 'sms-allocation',
  promotion: 'sms-promotion',
  otp: 'sms-otp',
} as const
export type SmsKind = keyof typeof SMS_ROUTES

/** The routing key from the check exchange to the dead-letter inbox (a hyphen: never a check's name). */
export const DEAD_INBOX_KEY = 'dead-inbox'

export function tierLabel(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}

export interface TopologyNames {
  intakeExchange: string
  intakeQueues: string[]
  intakeDlx: string
  intakeDead: string
  checkExchange: string
  checkQueue(check: string): string
  /** Verdict callbacks: a queue on the check exchange, routing key `callback`. */
  callbackQueue: string
  /** Messages to citizens, one queue per kind (routing key SMS_ROUTES[kind]). */
  smsQueues: Record<SmsKind, string>
  retryExchange: string
  retryQueues: { label: string; ms: number; queue: string }[]
  deadExchange: string
  /** Dead letters not booked yet: the checker consumes it, books them and moves them to `dead`. */
  deadInbox: string
  /** Dead letters, booked: listed and replayed from here. */
  dead: string
  /** Stats snapshots of every process (fanout, not durable, messages not persistent). */
  statsExchange: string
  /** Every queue an operator watches: intake shards, checks, callback, retry tiers, dead letters. */
  watchedQueues(checks: readonly string[], sms?: boolean): { queue: string; kind: QueueKind; name: string }[]
}

export type QueueKind =
  | 'intake'
  | 'check'
  | 'callback'
  | 'sms'
  | 'retry'
  | 'dead'
  | 'dead_inbox'
  | 'intake_dead'

export function topologyNames(
  opts: Pick<TopologyOptions, 'prefix' | 'intakeShards' | 'retryTiersMs'>,
): TopologyNames {
  const p = opts.prefix
  const intakeQueues =
    opts.intakeShards === 1
      ? [`${p}.intake`]
      : Array.from({ length: opts.intakeShards }, (_, i) => `${p}.intake.${i}`)
  return {
    intakeExchange: `${p}.intake`,
    intakeQueues,
    intakeDlx: `${p}.intake.dlx`,
    intakeDead: `${p}.intake.dead`,
    checkExchange: `${p}.check`,
    checkQueue: (check) => `${p}.check.${check}`,
    callbackQueue: `${p}.callback`,
    smsQueues: {
      receipt: `${p}.sms.receipt`,
      verdict: `${p}.sms.verdict`,
      allocation: `${p}.sms.allocation`,
      promotion: `${p}.sms.promotion`,
      otp: `${p}.sms.otp`,
    },
    retryExchange: `${p}.retry`,
    retryQueues: opts.retryTiersMs.map((ms) => ({
      label: tierLabel(ms),
      ms,
      queue: `${p}.retry.${tierLabel(ms)}`,
    })),
    deadExchange: `${p}.dead`,
    deadInbox: `${p}.dead.inbox`,
    dead: `${p}.dead`,
    statsExchange: `${p}.stats`,
    watchedQueues: (checks, sms = false) => [
      ...intakeQueues.map((q, i) => ({
        queue: q,
        kind: 'intake' as const,
        name: intakeQueues.length === 1 ? 'intake' : `intake ${i}`,
      })),
      ...checks.map((c) => ({ queue: `${p}.check.${c}`, kind: 'check' as const, name: c })),
      { queue: `${p}.callback`, kind: 'callback' as const, name: 'callback' },
      ...(sms ? (['otp', 'receipt', 'verdict', 'allocation', 'promotion'] as const) : []).map((k) => ({
        queue: `${p}.sms.${k}`,
        kind: 'sms' as const,
        name: `sms ${k}`,
      })),
      ...opts.retryTiersMs.map((ms) => ({
        queue: `${p}.retry.${tierLabel(ms)}`,
        kind: 'retry' as const,
        name: `retry ${tierLabel(ms)}`,
      })),
      { queue: `${p}.dead.inbox`, kind: 'dead_inbox' as const, name: 'dead letters to book' },
      { queue: `${p}.dead`, kind: 'dead' as const, name: 'dead letters' },
      { queue: `${p}.intake.dead`, kind: 'intake_dead' as const, name: 'intake dead letters' },
    ],
  }
}

/** The routing key of intake shard i (a person's submissions always hash to the same shard). */
export function shardKey(i: number): string {
  return String(i)
}

function quorum(args: Record<string, unknown>): Options.AssertQueue {
  return { durable: true, arguments: { 'x-queue-type': 'quorum', ...args } }
}

export async function declareTopology(ch: Channel, opts: TopologyOptions): Promise<TopologyNames> {
  const n = topologyNames(opts)

  await ch.assertExchange(n.intakeDlx, 'fanout', { durable: true })
  await ch.assertQueue(n.intakeDead, quorum({}))
  await ch.bindQueue(n.intakeDead, n.intakeDlx, '')

  await ch.assertExchange(n.intakeExchange, 'direct', { durable: true })
  for (const [i, q] of n.intakeQueues.entries()) {
    await ch.assertQueue(
      q,
      quorum({
        'x-max-length': opts.intakeMaxLength,
        'x-overflow': 'reject-publish',
        'x-delivery-limit': opts.intakeDeliveryLimit,
        'x-dead-letter-exchange': n.intakeDlx,
        'x-dead-letter-strategy': 'at-least-once',
      }),
    )
    await ch.bindQueue(q, n.intakeExchange, shardKey(i))
  }

  await ch.assertExchange(n.deadExchange, 'fanout', { durable: true })
  await ch.assertQueue(n.dead, quorum({}))
  // Dead letters go to the inbox first, to be booked; `dead` is filled by the checker only. (Older
  // versions bound `dead` to the exchange directly: that binding is removed.)
  await ch.unbindQueue(n.dead, n.deadExchange, '')
  await ch.assertQueue(n.deadInbox, quorum({}))
  await ch.bindQueue(n.deadInbox, n.deadExchange, '')

  await ch.assertExchange(n.checkExchange, 'direct', { durable: true })
  for (const check of opts.checks) {
    const q = n.checkQueue(check)
    await ch.assertQueue(
      q,
      quorum({
        'x-max-length': opts.checkMaxLength ?? 10_000_000,
        'x-overflow': 'reject-publish',
        'x-delivery-limit': opts.checkDeliveryLimit ?? 20,
        'x-dead-letter-exchange': n.deadExchange,
        'x-dead-letter-strategy': 'at-least-once',
      }),
    )
    await ch.bindQueue(q, n.checkExchange, check)
  }

  await ch.assertQueue(
    n.callbackQueue,
    quorum({
      'x-overflow': 'reject-publish',
      'x-delivery-limit': opts.checkDeliveryLimit ?? 20,
      'x-dead-letter-exchange': n.deadExchange,
      'x-dead-letter-strategy': 'at-least-once',
    }),
  )
  await ch.bindQueue(n.callbackQueue, n.checkExchange, CALLBACK)
  for (const kind of Object.keys(SMS_ROUTES) as SmsKind[]) {
    await ch.assertQueue(
      n.smsQueues[kind],
      quorum({
        'x-overflow': 'reject-publish',
        'x-delivery-limit': opts.checkDeliveryLimit ?? 20,
        'x-dead-letter-exchange': n.deadExchange,
        'x-dead-letter-strategy': 'at-least-once',
      }),
    )
    await ch.bindQueue(n.smsQueues[kind], n.checkExchange, SMS_ROUTES[kind])
  }
  await ch.bindQueue(n.deadInbox, n.checkExchange, DEAD_INBOX_KEY)

  await ch.assertExchange(n.retryExchange, 'headers', { durable: true })
  for (const tier of n.retryQueues) {
    await ch.assertQueue(
      tier.queue,
      quorum({
        'x-message-ttl': tier.ms,
        'x-overflow': 'reject-publish',
        'x-dead-letter-exchange': n.checkExchange,
        'x-dead-letter-strategy': 'at-least-once',
      }),
    )
    await ch.bindQueue(tier.queue, n.retryExchange, '', { 'x-match': 'all', tier: tier.label })
  }

  // Not durable: stats are about the running processes, and every process re-declares it on connect.
  await ch.assertExchange(n.statsExchange, 'fanout', { durable: false })
  return n
}

/**
 * The status role's own queue on the stats exchange: server-named, exclusive and auto-deleted (it
 * goes with the connection), classic, short TTL and bounded, so a slow or gone reader never piles
 * snapshots up on the broker.
 */
export async function declareStatsQueue(ch: Channel, n: TopologyNames): Promise<string> {
  const q = await ch.assertQueue('', {
    exclusive: true,
    autoDelete: true,
    durable: false,
    arguments: { 'x-queue-type': 'classic', 'x-message-ttl': 5000, 'x-max-length': 2000 },
  })
  await ch.bindQueue(q.queue, n.statsExchange, '')
  return q.queue
}

/** Deletes everything declareTopology made (tests clean up after themselves). */
export async function deleteTopology(ch: Channel, opts: TopologyOptions): Promise<void> {
  const n = topologyNames(opts)
  const queues = [
    ...n.intakeQueues,
    n.intakeDead,
    n.deadInbox,
    n.dead,
    ...opts.checks.map((c) => n.checkQueue(c)),
    n.callbackQueue,
    ...Object.values(n.smsQueues),
    ...n.retryQueues.map((t) => t.queue),
  ]
  for (const q of queues) await ch.deleteQueue(q)
  for (const e of [
    n.intakeExchange,
    n.intakeDlx,
    n.checkExchange,
    n.retryExchange,
    n.deadExchange,
    n.statsExchange,
  ])
    await ch.deleteExchange(e)
}
