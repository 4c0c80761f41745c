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
import { type Campaign, fillText, type SabtConfig, type SmsConfig } from '../../config/campaigns.js'
import {
  claimNotice,
  claimOtp,
  finishNotice,
  finishOtp,
  loadNoticeSubjects,
  loadOtpSubject,
  type NoticeKind,
  type NoticeSubject,
  placeNotice,
  recordNoticeRetries,
  releaseNotice,
  releaseOtp,
  showTrackingCode,
  type Told,
} from '../../db/citizen.js'
import { allocationOf } from '../../db/draws.js'
import type { Pool } from '../../db/pool.js'
import { TokenBucket } from '../../lib/token-bucket.js'
import type { MqClient } from '../../mq/connection.js'
import { SMS_ROUTES, type SmsKind } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import { type Metrics, SMS_PROVIDER } from '../../observability/metrics.js'
import { openField, openOtp } from '../../privacy/personal-fields.js'
import type { Sealer } from '../../privacy/sealing.js'
import {
  classifyStatus,
  PermanentError,
  parseRetryAfter,
  RateLimitedError,
  TransientError,
} from './outcomes.js'
import { SharedRate } from './shared-rate.js'
import { type FollowUp, ParkError, type Task } from './worker.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Tokens of the SMS provider's shared rate, handed out by priority: a one-time code waiting is
 * served before any receipt or verdict waiting in this process (decision 021). Across processes
 * the shared schedule (SharedRate) is leased slice by slice, so a process with a code to send gets
 * its share of the rate whatever the others hold.
 */
export class PriorityGate {
  readonly #high: Array<{ resolve: () => void; reject: (e: unknown) => void }> = []
  readonly #low: Array<{ resolve: () => void; reject: (e: unknown) => void }> = []
  #pumping = false

  constructor(readonly rate: { take(): Promise<number> }) {}

  get waiting(): { high: number; low: number } {
    return { high: this.#high.length, low: this.#low.length }
  }

  acquire(high: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      ;(high ? this.#high : this.#low).push({ resolve, reject })
      if (!this.#pumping) void this.#pump()
    })
  }

  async #pump(): Promise<void> {
    this.#pumping = true
    try {
      while (this.#high.length + this.#low.length > 0) {
        let wait: number
        try {
          wait = await this.rate.take()
        } catch (err) {
          for (const w of this.#high.splice(0)) w.reject(err)
          for (const w of this.#low.splice(0)) w.reject(err)
          break
        }
        if (wait > 0) {
          await sleep(wait)
          continue
        }
        const next = this.#high.shift() ?? this.#low.shift()
        next?.resolve()
      }
    } finally {
      this.#pumping = false
    }
  }
}

const CIRCUIT_GAUGE: Record<CircuitState, number> = {
  [CircuitState.Closed]: 0,
  [CircuitState.HalfOpen]: 1,
  [CircuitState.Open]: 2,
  [CircuitState.Isolated]: 2,
}

/**
 * The SMS provider, configured like a check (`sms:` in the configuration): a keep-alive pool
 * capped at its concurrency, a per-call timeout, the rate shared by every checker process, a
 * circuit breaker. Each message carries an idempotency key (`receipt:<id>`, `verdict:<id>`,
 * `allocation:<id>`, `promotion:<id>`, `otp:<id>`): a provider that honours it delivers a retry once.
 */
export class SmsSender {
  readonly http: HttpPool
  readonly bucket: TokenBucket
  readonly rate: SharedRate
  readonly gate: PriorityGate
  readonly breaker: CircuitBreakerPolicy
  readonly #path: string

  constructor(
    readonly sms: SmsConfig,
    readonly deps: { pool: Pool; metrics: Metrics; log: Logger },
  ) {
    const url = new URL(sms.url)
    this.#path = `${url.pathname}${url.search}`
    this.http = new HttpPool(url.origin, {
      connections: sms.concurrency,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: sms.timeout_ms,
      bodyTimeout: sms.timeout_ms,
      connectTimeout: Math.min(sms.timeout_ms, 5000),
    })
    this.bucket = new TokenBucket(sms.rate_per_second)
    this.rate = new SharedRate(deps.pool, SMS_PROVIDER, this.bucket)
    this.gate = new PriorityGate(this.rate)
    this.breaker = circuitBreaker(
      handleWhen((e) => e instanceof TransientError),
      {
        halfOpenAfter: sms.breaker.half_open_after_ms,
        breaker: new ConsecutiveBreaker(sms.breaker.consecutive_failures),
      },
    )
    const gauge = deps.metrics.circuitState.labels({ check: SMS_PROVIDER })
    gauge.set(0)
    this.breaker.onStateChange((s) => {
      gauge.set(CIRCUIT_GAUGE[s])
      deps.log.warn({ event: 'sms.circuit', state: CircuitState[s] }, `sms circuit ${CircuitState[s]}`)
    })
    deps.metrics.rateLimitPerSecond.set({ check: SMS_PROVIDER }, sms.rate_per_second)
  }

  /** Sends one text; throws TransientError / PermanentError / RateLimitedError / ParkError. */
  async send(kind: SmsKind, to: string, text: string, key: string): Promise<void> {
    const { metrics } = this.deps
    if (this.breaker.state === CircuitState.HalfOpen && kind !== 'otp')
      throw new ParkError('circuit_open', this.sms.breaker.half_open_after_ms)
    await this.gate.acquire(kind === 'otp')
    try {
      await this.breaker.execute(() => this.#call(to, text, key))
    } catch (err) {
      if (err instanceof BrokenCircuitError || err instanceof IsolatedCircuitError) {
        metrics.citizenMessages.inc({ kind, result: 'circuit_open' })
        throw new ParkError('circuit_open', this.sms.breaker.half_open_after_ms)
      }
      const result =
        err instanceof RateLimitedError
          ? 'rate_limited'
          : err instanceof PermanentError
            ? 'permanent'
            : 'transient'
      metrics.citizenMessages.inc({ kind, result })
      if (err instanceof RateLimitedError) this.bucket.slowDown(err.retryAfterMs)
      throw err
    }
    this.bucket.recover()
    metrics.citizenMessages.inc({ kind, result: 'sent' })
  }

  async #call(to: string, text: string, key: string): Promise<void> {
    const body = JSON.stringify({ to, text, reference: key })
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      'idempotency-key': key,
    }
    if (this.sms.auth_header) headers.authorization = this.sms.auth_header
    let res: Awaited<ReturnType<HttpPool['request']>>
    const started = performance.now()
    try {
      res = await this.http.request({
        path: this.#path,
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.sms.timeout_ms),
      })
    } catch (err) {
      const e = err as Error & { code?: string }
      throw new TransientError(
        `sms provider: ${e.name === 'TimeoutError' ? 'timeout' : (e.code ?? e.message)}`,
      )
    }
    // Answered calls, as the checks' are timed: the same histogram, labelled with the provider.
    this.deps.metrics.providerLatency.observe({ check: SMS_PROVIDER }, (performance.now() - started) / 1000)
    await res.body.dump().catch(() => {})
    const cls = classifyStatus(res.statusCode)
    if (cls === 'rate_limited') throw new RateLimitedError(parseRetryAfter(res.headers['retry-after']))
    if (cls === 'transient') throw new TransientError(`sms provider answered ${res.statusCode}`)
    if (cls === 'permanent') throw new PermanentError(`sms provider answered ${res.statusCode}`)
  }

  async close(): Promise<void> {
    await this.http.close().catch(() => {})
  }
}

/** How long a sender holds a message it is sending before another may (a killed sender's lapses). */
const holdFor = (sms: SmsConfig) => sms.timeout_ms + 5000

interface SmsDeps {
  mq: MqClient
  pool: Pool
  config: SabtConfig
  sealer: Sealer
  metrics: Metrics
  log: Logger
  /** How long an owed message is left to its own message before the sweeper publishes it again. */
  leaseMs: number
}

/**
 * A receipt (on recording, with the tracking code), a verdict message (accepted / rejected, and
 * the place in a first_come campaign), an allocation message (a lottery's draw: won, or on the
 * waiting list) or a promotion (a place given up came to this person) to the registration's mobile. What is owed is the
 * outbox row (`citizen_messages`, made by migration 0011's triggers), not a message: a copy of a
 * message for a row already sent sends nothing; a row whose message was lost is published again
 * by the sweeper. The mobile is opened only to call, never logged.
 */
export class NoticeTask implements Task {
  readonly name: string
  readonly queue: string
  readonly concurrency: number
  readonly maxAttempts: number
  readonly idsPerMessage = 200

  constructor(
    readonly kind: NoticeKind,
    readonly sender: SmsSender,
    readonly deps: SmsDeps,
  ) {
    this.name = SMS_ROUTES[kind]
    this.queue = deps.mq.names.smsQueues[kind]
    this.concurrency = sender.sms.concurrency
    this.maxAttempts = sender.sms.max_attempts
  }

  prepare(ids: readonly string[]): Promise<Map<string, NoticeSubject>> {
    return loadNoticeSubjects(this.deps.pool, ids, this.kind)
  }

  async perform(id: string, campaignSlug: string, attempt: number, prepared?: unknown): Promise<FollowUp[]> {
    const { pool, config, sealer, metrics } = this.deps
    const row =
      (prepared as Map<string, NoticeSubject> | undefined)?.get(id) ??
      (await loadNoticeSubjects(pool, [id], this.kind)).get(id)
    if (row?.state !== 'pending') return [] // sent already, or nothing owed: a copy sends nothing
    const campaign = config.campaigns.get(campaignSlug)
    if (!campaign) throw new ParkError('unconfigured', 10_000) // a process that knows it sends it
    if (!campaign.messages || !row.mobile_sealed || row.erased_at || !row.code) {
      await finishNotice(pool, id, this.kind, 'skipped', attempt, campaign.messages ? 'erased' : 'no texts')
      metrics.citizenMessages.inc({ kind: this.kind, result: 'skipped' })
      return []
    }
    // Claimed before its text is read: a promotion (below) waits for a held message of the place,
    // so the place a text tells is read while it is held, never before.
    const claim = await claimNotice(pool, id, this.kind, holdFor(this.sender.sms))
    if (claim < 0) return [] // sent meanwhile (another copy)
    if (claim > 0) throw new ParkError('unavailable', claim) // another sender holds it: after it lapses
    let said: { text: string; told: Told | null } | null
    try {
      if (this.kind === 'promotion' || this.kind === 'allocation') {
        const told = await this.#toldAlready(campaign, id)
        if (told) {
          await finishNotice(pool, id, this.kind, 'skipped', attempt, told)
          metrics.citizenMessages.inc({ kind: this.kind, result: 'skipped' })
          return []
        }
      }
      said = await this.#text(campaign, row)
    } catch (err) {
      await releaseNotice(pool, id, this.kind).catch(() => {})
      throw err
    }
    if (said === null) {
      // An allocation message for a place given up (or a record no longer accepted): nothing to say.
      await finishNotice(pool, id, this.kind, 'skipped', attempt, 'no allocation to tell')
      metrics.citizenMessages.inc({ kind: this.kind, result: 'skipped' })
      return []
    }
    const to = openField(sealer, id, 'mobile', row.mobile_sealed, row.key_id)
    try {
      await this.sender.send(this.kind, to, said.text, `${this.kind}:${id}`)
    } catch (err) {
      await releaseNotice(pool, id, this.kind).catch(() => {})
      throw err
    }
    await finishNotice(pool, id, this.kind, 'sent', attempt + 1, null, said.told)
    return []
  }

  /**
   * Why a promotion need not be sent: the person's own message of the place (the verdict in a
   * first_come campaign, the allocation in a lottery) told them "won" already, or is still to be
   * sent and will (its text is read when it is sent, after this promotion was written). The same
   * for a first_come allocation message (owed once the place became final, decision 022): not
   * sent when the verdict told the place, or will; and no allocation message once a promotion
   * told the person they won. A sender holding that message: this one waits
   * until it is done. Null: the message is news.
   */
  async #toldAlready(campaign: Campaign, id: string): Promise<string | null> {
    if (this.kind === 'allocation') {
      // Read after a promotion was sent (a replay of a dead letter, a provider down meanwhile), it
      // would say "won" a second time.
      if ((await placeNotice(this.deps.pool, id, 'promotion'))?.state === 'sent')
        return 'its promotion message told it'
      if (campaign.scarce?.allocation === 'lottery') return null // it is the place's own message
    }
    const kind = campaign.scarce?.allocation === 'lottery' ? 'allocation' : 'verdict'
    const place = await placeNotice(this.deps.pool, id, kind)
    if (!place) return null
    if (place.state === 'pending') {
      if (place.heldMs > 0) throw new ParkError('unavailable', place.heldMs)
      return `its ${kind} message, still to be sent, tells it`
    }
    if (place.state !== 'sent') return null
    // A first_come allocation message (decision 022) is owed only when the verdict told no place.
    if (this.kind === 'allocation') return place.told ? `its ${kind} message told it` : null
    return place.told === 'won' ? `its ${kind} message told it` : null
  }

  /**
   * The text of this notice. A verdict carries the place where it is known at the verdict
   * (first_come); a lottery's comes with its draw, as the allocation notice (migration 0014), so
   * whichever runs first, a person is told each thing once.
   */
  async #text(campaign: Campaign, row: NoticeSubject): Promise<{ text: string; told: Told | null } | null> {
    const texts = campaign.messages!
    const values = { code: showTrackingCode(row.code!), title: campaign.title }
    const say = (text: string, told: Told | null = null) => ({ text: fillText(text, values), told })
    if (this.kind === 'receipt') return say(texts.receipt)
    if (this.kind === 'verdict') {
      if (row.status === 'rejected') return say(texts.rejected)
      if (campaign.scarce?.allocation !== 'first_come') return say(texts.accepted)
    }
    const allocation = await allocationOf(this.deps.pool, campaign, row)
    if (allocation?.state === 'won') return say(texts.won, 'won')
    // A promotion tells only of a place won (one given up again meanwhile: nothing to say).
    if (allocation?.state === 'waitlisted' && this.kind !== 'promotion')
      return say(texts.waitlisted, 'waitlisted')
    return this.kind === 'verdict' ? say(texts.accepted) : null
  }

  async onRetry(
    _campaign: string,
    retries: readonly { id: string; error: string }[],
    attempts: number,
    retryInMs: number,
  ): Promise<void> {
    await recordNoticeRetries(this.deps.pool, this.kind, retries, attempts, retryInMs + this.deps.leaseMs)
  }
}

/**
 * A one-time code of "am I registered?" to the registration's mobile: its own queue, served by
 * the provider's rate before any receipt (PriorityGate). The code is sealed only until sent.
 */
export class OtpTask implements Task {
  readonly name = SMS_ROUTES.otp
  readonly queue: string
  readonly concurrency: number
  readonly maxAttempts: number
  readonly idsPerMessage = 50

  constructor(
    readonly sender: SmsSender,
    readonly deps: SmsDeps,
  ) {
    this.queue = deps.mq.names.smsQueues.otp
    this.concurrency = Math.max(2, Math.min(8, sender.sms.concurrency))
    this.maxAttempts = Math.min(4, sender.sms.max_attempts)
  }

  async perform(id: string, campaignSlug: string, attempt: number): Promise<FollowUp[]> {
    const { pool, config, sealer } = this.deps
    const row = await loadOtpSubject(pool, id)
    if (row?.sms_state !== 'pending' || !row.code_sealed || !row.key_id || !row.mobile_sealed) return []
    if (row.expires_at.getTime() <= Date.now()) {
      await finishOtp(pool, id, 'error', 'expired before it was sent')
      return []
    }
    const campaign = config.campaigns.get(campaignSlug)
    if (!campaign) throw new ParkError('unconfigured', 1000)
    if (!campaign.messages) {
      await finishOtp(pool, id, 'error', 'no texts')
      return []
    }
    if ((await claimOtp(pool, id, holdFor(this.sender.sms))) > 0) throw new ParkError('unavailable', 1000)
    const code = openOtp(sealer, id, row.code_sealed, row.key_id)
    const to = openField(sealer, row.registration_id, 'mobile', row.mobile_sealed, row.reg_key_id)
    try {
      await this.sender.send(
        'otp',
        to,
        fillText(campaign.messages.otp, { otp: code, title: campaign.title }),
        `otp:${id}`,
      )
    } catch (err) {
      await releaseOtp(pool, id, err instanceof Error ? err.message.slice(0, 200) : 'error').catch(() => {})
      throw err
    }
    void attempt
    await finishOtp(pool, id, 'sent', null)
    return []
  }

  async onRetry(): Promise<void> {}
}
