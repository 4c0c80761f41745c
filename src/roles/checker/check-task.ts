import { performance } from 'node:perf_hooks'
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  IsolatedCircuitError,
} from 'cockatiel'
import { Pool as HttpPool } from 'undici'
import type { Campaign, CheckConfig, SabtConfig } from '../../config/campaigns.js'
import { configuredFor, firstChecks } from '../../config/campaigns.js'
import {
  type CheckSubjectRow,
  cachedOutcomes,
  loadCheckSubject,
  loadCheckSubjects,
  type OutcomeArgs,
  type OutcomeWritten,
  recordAttempts,
  recordOutcomes,
} from '../../db/checks.js'
import type { Pool } from '../../db/pool.js'
import { isFinal } from '../../domain/verdict.js'
import { Batcher } from '../../lib/batcher.js'
import { TokenBucket } from '../../lib/token-bucket.js'
import type { MqClient } from '../../mq/connection.js'
import { idsPerCheckMessage } from '../../mq/messages.js'
import type { Publisher } from '../../mq/publisher.js'
import { CALLBACK } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import type { Metrics } from '../../observability/metrics.js'
import { openField } from '../../privacy/personal-fields.js'
import type { Sealer } from '../../privacy/sealing.js'
import { Holds } from './held.js'
import {
  classifyStatus,
  PermanentError,
  parseRetryAfter,
  RateLimitedError,
  TransientError,
} from './outcomes.js'
import type { CheckSubject, Provider } from './providers/index.js'
import { SharedRate } from './shared-rate.js'
import { type FollowUp, ParkError, type Task } from './worker.js'

export interface CheckTaskDeps {
  mq: MqClient
  pool: Pool
  publisher: Publisher
  config: SabtConfig
  sealer: Sealer
  metrics: Metrics
  log: Logger
}

/** Longest a message may wait for a rate-limit token while held; longer, and it is parked. */
const MAX_TOKEN_WAIT_MS = 5000

/**
 * Writes the answers of the last few milliseconds together: one transaction for up to 200 of
 * them instead of one each (PostgreSQL was the checker's bottleneck at 20 ms provider latency).
 */
class OutcomeWriter {
  readonly #batcher: Batcher<{
    args: OutcomeArgs
    resolve: (w: OutcomeWritten | null) => void
    reject: (e: unknown) => void
  }>

  constructor(pool: Pool) {
    // 20 ms: at a few hundred answers a second, a batch still holds several of them.
    this.#batcher = new Batcher({ size: 200, maxWaitMs: 20 }, async (items) => {
      try {
        const written = await recordOutcomes(
          pool,
          items.map((i) => i.args),
        )
        items.forEach((i, n) => {
          i.resolve(written[n] ?? null)
        })
      } catch (err) {
        for (const i of items) i.reject(err)
      }
    })
  }

  write(args: OutcomeArgs): Promise<OutcomeWritten | null> {
    return new Promise((resolve, reject) => this.#batcher.add({ args, resolve, reject }))
  }

  drain(): Promise<void> {
    return this.#batcher.drain()
  }
}

interface Prepared {
  rows: Map<string, CheckSubjectRow>
  questions: Map<string, { request: Record<string, unknown>; key: Buffer | null }>
  hits: Map<string, { outcome: 'passed' | 'failed'; detail: unknown }>
}

const CIRCUIT_GAUGE: Record<CircuitState, number> = {
  [CircuitState.Closed]: 0,
  [CircuitState.HalfOpen]: 1,
  [CircuitState.Open]: 2,
  [CircuitState.Isolated]: 2,
}

/**
 * One check: reads the record, asks the provider (within its rate limit, behind its circuit
 * breaker, over a keep-alive pool with a per-call timeout), stores the answer, recomputes the
 * verdict, and asks the checks this one unlocks.
 */
export class CheckTask implements Task {
  readonly name: string
  readonly queue: string
  readonly concurrency: number
  readonly maxAttempts: number
  readonly idsPerMessage: number
  readonly bucket: TokenBucket
  /** The check's rate across every checker process (leases of a schedule in PostgreSQL). */
  readonly rate: SharedRate
  readonly breaker: CircuitBreakerPolicy
  readonly http: HttpPool
  readonly #path: string
  readonly #outcomes: OutcomeWriter
  readonly #holds: Holds

  constructor(
    readonly check: CheckConfig,
    readonly provider: Provider,
    readonly deps: CheckTaskDeps,
  ) {
    this.name = check.name
    this.queue = deps.mq.names.checkQueue(check.name)
    this.concurrency = check.concurrency
    this.maxAttempts = check.max_attempts
    this.idsPerMessage = idsPerCheckMessage(check)
    this.bucket = new TokenBucket(check.rate_per_second)
    this.rate = new SharedRate(deps.pool, check.name, this.bucket)
    this.#outcomes = new OutcomeWriter(deps.pool)
    this.#holds = new Holds(deps.metrics, deps.log)
    const url = new URL(check.url)
    this.#path = `${url.pathname}${url.search}`
    this.http = new HttpPool(url.origin, {
      connections: check.concurrency,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: check.timeout_ms,
      bodyTimeout: check.timeout_ms,
      connectTimeout: Math.min(check.timeout_ms, 5000),
    })
    this.breaker = circuitBreaker(
      handleWhen((e) => e instanceof TransientError),
      {
        halfOpenAfter: check.breaker.half_open_after_ms,
        breaker: new ConsecutiveBreaker(check.breaker.consecutive_failures),
      },
    )
    const gauge = deps.metrics.circuitState.labels({ check: check.name })
    gauge.set(0)
    this.breaker.onStateChange((s) => {
      gauge.set(CIRCUIT_GAUGE[s])
      deps.log.warn(
        { event: 'checker.circuit', check: check.name, state: CircuitState[s] },
        `circuit ${CircuitState[s]}`,
      )
    })
    deps.metrics.rateLimitPerSecond.set({ check: check.name }, check.rate_per_second)
  }

  /**
   * A whole message's records in one go: their rows (one query) and, for a cached check, the
   * cached answers to their questions (one more query). Rows are read again only if missing.
   */
  async prepare(ids: readonly string[]): Promise<Prepared> {
    const rows = await loadCheckSubjects(this.deps.pool, ids, this.name)
    const questions = new Map<string, { request: Record<string, unknown>; key: Buffer | null }>()
    const hits = new Map<string, { outcome: 'passed' | 'failed'; detail: unknown }>()
    if (this.check.cache_ttl_s > 0) {
      for (const row of rows.values())
        if (!row.erased_at && row.outcome !== 'passed' && row.outcome !== 'failed' && !isFinal(row.status))
          questions.set(row.id, this.#question(row))
      const keys = [...questions.values()].map((q) => q.key!)
      for (const [hex, hit] of await cachedOutcomes(this.deps.pool, this.name, keys, this.check.cache_ttl_s))
        hits.set(hex, hit)
    }
    return { rows, questions, hits }
  }

  /** What the provider is asked for a record (opening only the sealed fields it needs), and its cache key. */
  #question(row: CheckSubjectRow): { request: Record<string, unknown>; key: Buffer | null } {
    const { sealer } = this.deps
    const subject: CheckSubject = {
      id: row.id,
      campaign: row.campaign,
      national_id: this.provider.needs.includes('national_id')
        ? openField(sealer, row.id, 'national_id', row.national_id_sealed!, row.key_id)
        : '',
      mobile: this.provider.needs.includes('mobile')
        ? openField(sealer, row.id, 'mobile', row.mobile_sealed!, row.key_id)
        : '',
      first_name: row.first_name ?? '',
      last_name: row.last_name ?? '',
      birth_date: row.birth_date ?? '',
    }
    const request = this.provider.buildRequest(subject)
    const key =
      this.check.cache_ttl_s > 0 ? sealer.blindIndex(`${this.name}\u0000${JSON.stringify(request)}`) : null
    return { request, key }
  }

  async perform(id: string, campaignSlug: string, attempt: number, prepared?: unknown): Promise<FollowUp[]> {
    const { pool, metrics } = this.deps
    const ready = prepared as Prepared | undefined
    const row = ready?.rows.get(id) ?? (await loadCheckSubject(pool, id, this.name))
    if (!row || row.erased_at) return [] // nothing to check (never recorded, or erased): drop
    // A campaign this configuration does not know, or one it knows without this check: never
    // decided here (no "no checks required"). Held, unless its verdict is known already.
    const configured = configuredFor(this.deps.config, campaignSlug, this.name)
    if ('held' in configured) {
      if (isFinal(row.status)) return []
      throw this.#holds.hold(this.name, campaignSlug, configured.held)
    }
    const { campaign } = configured
    if (row.outcome === 'passed' || row.outcome === 'failed') {
      // Already answered (a redelivery, or a replay of a check that meanwhile succeeded): do not
      // ask again; make sure what follows from the answer happened (idempotent).
      metrics.checkAttempts.inc({ check: this.name, result: 'already_done' })
      return this.#finish(id, campaign, row.outcome, attempt, null, null)
    }
    if (isFinal(row.status)) {
      metrics.checkAttempts.inc({ check: this.name, result: 'skipped_final' })
      return [] // the verdict is known (another check failed): spend no quota
    }

    const { request, key: cacheKey } = ready?.questions.get(id) ?? this.#question(row)
    if (cacheKey) {
      // Asked before, within the cache's TTL (another campaign, a replay): the stored answer.
      const hit = ready?.questions.has(id)
        ? ready.hits.get(cacheKey.toString('hex'))
        : ((await cachedOutcomes(pool, this.name, [cacheKey], this.check.cache_ttl_s)).get(
            cacheKey.toString('hex'),
          ) ?? undefined)
      if (hit) {
        metrics.checkAttempts.inc({ check: this.name, result: 'cached' })
        return this.#finish(id, campaign, hit.outcome, attempt, null, {
          ...(hit.detail as object),
          cached: true,
        })
      }
    }

    // A circuit that is open (or probing) is not asked: the message waits in a delay tier.
    // When open, execute() below refuses, or lets this one call through as the half-open probe.
    if (this.breaker.state === CircuitState.HalfOpen)
      throw new ParkError('circuit_open', this.check.breaker.half_open_after_ms)
    // A token is taken at the moment of the call (not reserved ahead), so a late timer or a busy
    // event loop can only spread calls out, never bunch them past the limit. The rate is the
    // check's across all checker replicas, not this process's.
    const giveUpAt = Date.now() + MAX_TOKEN_WAIT_MS
    for (let wait = await this.rate.take(); wait > 0; wait = await this.rate.take()) {
      if (Date.now() + wait > giveUpAt) throw new ParkError('rate_limited', wait)
      await new Promise((r) => setTimeout(r, wait))
    }

    let answer: { outcome: 'passed' | 'failed'; detail: Record<string, unknown>; latencyMs: number }
    try {
      answer = await this.breaker.execute(() => this.#call(id, request))
    } catch (err) {
      if (err instanceof BrokenCircuitError || err instanceof IsolatedCircuitError) {
        metrics.checkAttempts.inc({ check: this.name, result: 'circuit_open' })
        throw new ParkError('circuit_open', this.check.breaker.half_open_after_ms)
      }
      if (err instanceof RateLimitedError) this.bucket.slowDown(err.retryAfterMs)
      throw err
    }
    this.bucket.recover()
    return this.#finish(id, campaign, answer.outcome, attempt, answer.latencyMs, answer.detail, cacheKey)
  }

  async #call(
    id: string,
    request: Record<string, unknown>,
  ): Promise<{ outcome: 'passed' | 'failed'; detail: Record<string, unknown>; latencyMs: number }> {
    const { metrics } = this.deps
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' }
    if (this.provider.idempotencyKey) headers['idempotency-key'] = id
    if (this.check.auth_header) headers.authorization = this.check.auth_header
    const started = performance.now()
    let res: Awaited<ReturnType<HttpPool['request']>>
    try {
      res = await this.http.request({
        path: this.#path,
        method: 'POST',
        headers,
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(this.check.timeout_ms),
      })
    } catch (err) {
      const e = err as Error & { code?: string }
      const timedOut =
        e.name === 'TimeoutError' || e.name === 'AbortError' || /timeout/i.test(e.code ?? e.message)
      metrics.checkAttempts.inc({ check: this.name, result: timedOut ? 'timeout' : 'connection_error' })
      throw new TransientError(
        timedOut ? `timeout after ${this.check.timeout_ms} ms` : `connection error: ${e.code ?? e.message}`,
      )
    }
    const latencyMs = Math.round(performance.now() - started)
    metrics.providerLatency.observe({ check: this.name }, latencyMs / 1000)
    const cls = classifyStatus(res.statusCode)
    if (cls !== 'success') {
      await res.body.dump().catch(() => {})
      metrics.checkAttempts.inc({ check: this.name, result: cls })
      if (cls === 'rate_limited') throw new RateLimitedError(parseRetryAfter(res.headers['retry-after']))
      if (cls === 'transient') throw new TransientError(`provider answered ${res.statusCode}`)
      throw new PermanentError(`provider answered ${res.statusCode}`)
    }
    let body: unknown = null
    try {
      body = await res.body.json()
    } catch {
      body = null
    }
    const read = this.provider.readOutcome(body)
    if (!read) {
      metrics.checkAttempts.inc({ check: this.name, result: 'permanent' })
      throw new PermanentError('provider answered 2xx with an answer that cannot be read')
    }
    metrics.checkAttempts.inc({ check: this.name, result: read.outcome })
    return { ...read, latencyMs }
  }

  /** Stores a definite answer; returns what it unlocks, and the callback of a final verdict. */
  async #finish(
    id: string,
    campaign: Campaign,
    outcome: 'passed' | 'failed',
    attempt: number,
    latencyMs: number | null,
    detail: unknown,
    cacheKey: Buffer | null = null,
  ): Promise<FollowUp[]> {
    const { metrics } = this.deps
    const written = await this.#outcomes.write({
      id,
      check: this.name,
      outcome,
      attempts: attempt + 1,
      latencyMs,
      detail,
      required: campaign.checks,
      hasCallback: campaign.callbackUrl !== null,
      cacheKey, // a fresh answer is kept for the cache's TTL, in the same transaction
      maxRecordsPerPerson: campaign.maxRecordsPerPerson,
    })
    if (!written) return []
    if (written.stored) metrics.checks.inc({ check: this.name, outcome })
    this.deps.log.debug({
      event: 'checker.outcome',
      registration_id: id,
      check: this.name,
      outcome,
      attempts: attempt + 1,
      latency_ms: latencyMs,
      stored: written.stored,
      status: written.status,
      unlocked: written.unlocked,
    })
    const next: FollowUp[] = written.unlocked.map((check) => ({ check, campaign: campaign.slug, id }))
    if (written.becameFinal && campaign.callbackUrl)
      next.push({ check: CALLBACK, campaign: campaign.slug, id })
    // A record that took the place this one gave up (decision 015): its first checks.
    for (const p of written.promoted)
      for (const check of firstChecks(campaign)) next.push({ check, campaign: p.campaign, id: p.id })
    return next
  }

  async onRetry(
    _campaign: string,
    retries: readonly { id: string; error: string }[],
    attempts: number,
  ): Promise<void> {
    await recordAttempts(
      this.deps.pool,
      this.name,
      retries.map((r) => ({ id: r.id, attempts, lastError: r.error })),
    )
  }

  async close(): Promise<void> {
    await this.#outcomes.drain()
    await this.http.close().catch(() => {})
  }
}
