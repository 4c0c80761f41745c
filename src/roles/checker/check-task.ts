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
import type { Campaign, CheckConfig } from '../../config/campaigns.js'
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
import { idsPerCheckMessage } from '../../mq/messages.js'
import { CALLBACK } from '../../mq/topology.js'
import { checkCacheKey, openField } from '../../privacy/personal-fields.js'
import type { RoleDeps } from '../role.js'
import { Holds } from './held.js'
import {
  classifyStatus,
  PermanentError,
  parseRetryAfter,
  RateLimitedError,
  TransientError,
} from './outcomes.js'
import { hmacHeaders, type TokenCache, type TokenCaches } from './providers/auth.js'
import type { Answer, CheckSubject, Provider } from './providers/index.js'
import { SharedRate } from './shared-rate.js'
import { type FollowUp, ParkError, type Task } from './worker.js'

export interface CheckTaskDeps extends RoleDeps {
  /** The process's OAuth2 tokens, shared by every check that uses the same client. */
  tokens: TokenCaches
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

interface Question {
  request: unknown
  key: Buffer | null
}

interface CachedAnswer {
  outcome: 'passed' | 'failed'
  detail: unknown
}

interface Prepared {
  rows: Map<string, CheckSubjectRow>
  questions: Map<string, Question>
  hits: Map<string, CachedAnswer>
}

/** A cached answer's reason (kept in its detail). */
function cachedAnswer(hit: CachedAnswer): Answer {
  const d = (hit.detail ?? {}) as { reason?: unknown; reason_text?: unknown }
  return {
    outcome: hit.outcome,
    reason: typeof d.reason === 'string' ? d.reason : null,
    text: typeof d.reason_text === 'string' ? d.reason_text : null,
  }
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
  readonly #tokens: TokenCache | null

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
    this.#tokens = provider.auth?.type === 'oauth2_client_credentials' ? deps.tokens.for(provider.auth) : null
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
    const questions = new Map<string, Question>()
    const hits = new Map<string, CachedAnswer>()
    if (this.check.cache_ttl_s > 0) {
      for (const row of rows.values())
        if (!row.erased_at && row.outcome !== 'passed' && row.outcome !== 'failed' && !isFinal(row.status))
          questions.set(row.id, await this.#question(row))
      const keys = [...questions.values()].map((q) => q.key!)
      for (const [hex, hit] of await cachedOutcomes(this.deps.pool, this.name, keys, this.check.cache_ttl_s))
        hits.set(hex, hit)
    }
    return { rows, questions, hits }
  }

  /**
   * What the provider is asked for a record, and its cache key: the provider is given only the
   * fields its definition names, and only those sealed fields are opened.
   */
  async #question(row: CheckSubjectRow): Promise<Question> {
    const { sealer } = this.deps
    const subject: CheckSubject = {}
    for (const f of this.provider.fields) {
      switch (f) {
        case 'national_id':
          subject.national_id = openField(sealer, row.id, 'national_id', row.national_id_sealed!, row.key_id)
          break
        case 'mobile':
          subject.mobile = openField(sealer, row.id, 'mobile', row.mobile_sealed!, row.key_id)
          break
        case 'id':
          subject.id = row.id
          break
        case 'campaign':
          subject.campaign = row.campaign
          break
        default:
          subject[f] = row[f] ?? ''
      }
    }
    const request = await this.provider.buildRequest(subject)
    const key = this.check.cache_ttl_s > 0 ? checkCacheKey(sealer, this.name, request) : null
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
      return this.#finish(
        id,
        campaign,
        { outcome: row.outcome, reason: null, text: null },
        attempt,
        null,
        false,
      )
    }
    if (isFinal(row.status)) {
      metrics.checkAttempts.inc({ check: this.name, result: 'skipped_final' })
      return [] // the verdict is known (another check failed): spend no quota
    }

    const { request, key: cacheKey } = ready?.questions.get(id) ?? (await this.#question(row))
    if (cacheKey) {
      // Asked before, within the cache's TTL (another campaign, a replay): the stored answer.
      const hit = ready?.questions.has(id)
        ? ready.hits.get(cacheKey.toString('hex'))
        : ((await cachedOutcomes(pool, this.name, [cacheKey], this.check.cache_ttl_s)).get(
            cacheKey.toString('hex'),
          ) ?? undefined)
      if (hit) {
        metrics.checkAttempts.inc({ check: this.name, result: 'cached' })
        return this.#finish(id, campaign, cachedAnswer(hit), attempt, null, true)
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

    let answer: Answer & { latencyMs: number }
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
    return this.#finish(id, campaign, answer, attempt, answer.latencyMs, false, cacheKey)
  }

  /** The headers of one call: the definition's, its authentication's, the idempotency key. */
  #headers(id: string, body: string, token: string | null): Record<string, string> {
    const p = this.provider
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      ...p.headers,
    }
    if (p.idempotencyKey) headers['idempotency-key'] = id
    if (this.check.auth_header) headers.authorization = this.check.auth_header
    const auth = p.auth
    if (auth?.type === 'header') headers[auth.name.toLowerCase()] = auth.value
    if (token) headers.authorization = `Bearer ${token}`
    const call = { method: p.method, path: this.#path, body, headers }
    if (p.extraHeaders) Object.assign(headers, p.extraHeaders(body, call))
    if (auth?.type === 'hmac') Object.assign(headers, hmacHeaders(auth, call))
    return headers
  }

  async #call(id: string, request: unknown): Promise<Answer & { latencyMs: number }> {
    const { metrics } = this.deps
    const body = JSON.stringify(request)
    let token = this.#tokens ? await this.#tokens.get() : null
    const started = performance.now()
    let res: Awaited<ReturnType<HttpPool['request']>>
    for (let renewed = false; ; renewed = true) {
      try {
        res = await this.http.request({
          path: this.#path,
          method: this.provider.method,
          headers: this.#headers(id, body, token),
          body,
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
      // A token the provider no longer takes (revoked, expired early): one new token, one more try.
      if (res.statusCode !== 401 || !this.#tokens || !token || renewed) break
      await res.body.dump().catch(() => {})
      token = await this.#tokens.renew(token)
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
    let answer: unknown = null
    try {
      answer = await res.body.json()
    } catch {
      answer = null
    }
    const read = await this.provider.readAnswer(answer, res.statusCode)
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
    answer: Answer,
    attempt: number,
    latencyMs: number | null,
    cached: boolean,
    cacheKey: Buffer | null = null,
  ): Promise<FollowUp[]> {
    const { metrics } = this.deps
    const { outcome } = answer
    const written = await this.#outcomes.write({
      id,
      check: this.name,
      outcome,
      attempts: attempt + 1,
      latencyMs,
      // The reason travels with the cached answer; its text is personal data (never logged).
      detail:
        outcome === 'failed'
          ? { reason: answer.reason, reason_text: answer.text, ...(cached ? { cached } : {}) }
          : cached
            ? { cached }
            : null,
      reason: outcome === 'failed' ? answer.reason : null,
      reasonText: outcome === 'failed' ? answer.text : null,
      required: campaign.checks,
      hasCallback: campaign.callbackUrl !== null,
      cacheKey, // a fresh answer is kept for the cache's TTL, in the same transaction
      maxRecordsPerPerson: campaign.maxRecordsPerPerson,
    })
    if (!written) return []
    if (written.stored) {
      metrics.checks.inc({ check: this.name, outcome })
      if (outcome === 'failed')
        metrics.rejectionReasons.inc({
          campaign: campaign.slug,
          check: this.name,
          reason: answer.reason ?? 'unspecified',
        })
    }
    this.deps.log.debug({
      event: 'checker.outcome',
      registration_id: id,
      check: this.name,
      outcome,
      reason: answer.reason, // a code, never the provider's text
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
