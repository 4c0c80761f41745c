import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import Type from 'typebox'
import { Compile } from 'typebox/compile'
import { requireAdmin } from '../../http/auth.js'
import type { Logger } from '../../observability/logger.js'
import {
  type EligibilityQuestion,
  eligibilityReason,
  type IdentityQuestion,
  identityMatches,
  identityReason,
  isEligible,
  type MobileQuestion,
  mobileMatches,
  mobileReason,
  PROVIDERS,
  type ProviderName,
} from './answers.js'
import { defaultKnobs, drawLatency, type Knobs, KnobsPatch } from './knobs.js'
import { type Ask, type RealApiOptions, RealApis, realApiRoutes } from './real-apis.js'

/** What the simulator saw of one provider: the numbers tests and the dashboard assert on. */
export interface ProviderStats {
  calls: number
  answered: number
  no_answers: number
  errors: number
  timeouts: number
  rate_limited: number
  bad_requests: number
  /** The most calls that arrived within any one-second window (sliding). */
  max_calls_per_second: number
  /** Calls that carried an Idempotency-Key already seen. */
  repeated_keys: number
}

export class ProviderState {
  knobs: Knobs
  stats: ProviderStats = ProviderState.zero()
  keys = new Map<string, number>()
  #window: number[] = [] // arrival times within the last second
  #windowStart = 0
  #windowCount = 0 // calls in the current fixed second, for the rate limit

  constructor(readonly name: ProviderName | 'sms') {
    this.knobs = defaultKnobs(name)
  }

  static zero(): ProviderStats {
    return {
      calls: 0,
      answered: 0,
      no_answers: 0,
      errors: 0,
      timeouts: 0,
      rate_limited: 0,
      bad_requests: 0,
      max_calls_per_second: 0,
      repeated_keys: 0,
    }
  }

  arrive(now: number, key: string | undefined): void {
    this.stats.calls++
    const w = this.#window
    w.push(now)
    while (w.length > 0 && w[0]! <= now - 1000) w.shift()
    if (w.length > this.stats.max_calls_per_second) this.stats.max_calls_per_second = w.length
    if (key) {
      const seen = this.keys.get(key) ?? 0
      if (seen > 0) this.stats.repeated_keys++
      this.keys.set(key, seen + 1)
      // Bounded: a long soak must not turn the simulator into the leak.
      if (this.keys.size > 200_000) this.keys.delete(this.keys.keys().next().value!)
    }
  }

  /** Fixed one-second windows, as many real APIs count: true when this call is over the limit. */
  overLimit(now: number): boolean {
    const limit = this.knobs.rate_limit_per_s
    if (limit <= 0) return false
    const second = Math.floor(now / 1000)
    if (second !== this.#windowStart) {
      this.#windowStart = second
      this.#windowCount = 0
    }
    this.#windowCount++
    return this.#windowCount > limit
  }

  reset(): void {
    this.stats = ProviderState.zero()
    this.keys.clear()
    this.#window = []
  }
}

const NationalId = Type.String({ pattern: '^[0-9]{10}$' })
const QUESTIONS = {
  identity: Compile(
    Type.Object(
      {
        national_id: NationalId,
        first_name: Type.String({ minLength: 1 }),
        last_name: Type.String({ minLength: 1 }),
        birth_date: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' }),
      },
      { additionalProperties: false },
    ),
  ),
  mobile: Compile(
    Type.Object(
      { national_id: NationalId, mobile: Type.String({ pattern: '^09[0-9]{9}$' }) },
      { additionalProperties: false },
    ),
  ),
  eligibility: Compile(
    Type.Object(
      { national_id: NationalId, campaign: Type.String({ minLength: 1 }) },
      { additionalProperties: false },
    ),
  ),
} as const

/** The answer, and for a "no" its reason code and text. */
export function answer(p: ProviderName, body: unknown, failPercent: number): Record<string, unknown> {
  const no = (key: string, r: { code: string; text: string }) => ({
    [key]: false,
    reason: r.code,
    reason_text: r.text,
  })
  switch (p) {
    case 'identity': {
      const q = body as IdentityQuestion
      return identityMatches(q, failPercent) ? { match: true } : no('match', identityReason(q))
    }
    case 'mobile': {
      const q = body as MobileQuestion
      return mobileMatches(q, failPercent) ? { match: true } : no('match', mobileReason(q))
    }
    case 'eligibility': {
      const q = body as EligibilityQuestion
      return isEligible(q, failPercent) ? { eligible: true } : no('eligible', eligibilityReason(q))
    }
  }
}

export interface SimulatorOptions {
  log: Logger
  adminToken: string | null
  /** Knobs at start, e.g. from SABT_SIMULATOR_KNOBS: {"identity": {"latency_median_ms": 50}}. */
  knobs?: Partial<Record<ProviderName | 'sms', Partial<Knobs>>>
  /** The OAuth2 client, the HMAC secret and the token lifetime of /oauth/token, /v2/mobile, /v2/identity. */
  realApis?: Partial<RealApiOptions>
}

/**
 * Three third-party providers on one HTTP server, for development, tests and benchmarks:
 * `identity` (civil registry), `mobile` (operator), `eligibility`. Answers derive from the input
 * (src/roles/simulator/answers.ts); latency, errors, silence, rate limits and outages are knobs.
 */
export type Simulator = FastifyInstance & {
  providers: Map<ProviderName | 'sms', ProviderState>
  realApis: RealApis
  sms: SmsInbox
}

/** A text the simulated SMS provider accepted: delivered once per reference (its idempotency key). */
export interface SmsDelivery {
  reference: string
  to: string
  text: string
  at: number
  /** Requests that carried this reference (a retry of one already delivered is not delivered again). */
  requests: number
}

/** What the simulated SMS gateway delivered, by reference (bounded, like the keys). */
export class SmsInbox {
  readonly delivered = new Map<string, SmsDelivery>()
  accept(reference: string, to: string, text: string, now: number): SmsDelivery {
    const seen = this.delivered.get(reference)
    if (seen) {
      seen.requests++
      return seen
    }
    const d = { reference, to, text, at: now, requests: 1 }
    this.delivered.set(reference, d)
    if (this.delivered.size > 500_000) this.delivered.delete(this.delivered.keys().next().value!)
    return d
  }
  reset(): void {
    this.delivered.clear()
  }
}

const SmsRequest = Compile(
  Type.Object(
    {
      to: Type.String({ pattern: '^09[0-9]{9}$' }),
      text: Type.String({ minLength: 1, maxLength: 1000 }),
      reference: Type.String({ minLength: 1, maxLength: 128 }),
    },
    { additionalProperties: false },
  ),
)

export async function buildSimulator(opts: SimulatorOptions): Promise<Simulator> {
  const providers = new Map<ProviderName | 'sms', ProviderState>([
    ...PROVIDERS.map((p) => [p, new ProviderState(p)] as const),
    ['sms', new ProviderState('sms')],
  ])
  const sms = new SmsInbox()
  for (const [name, k] of Object.entries(opts.knobs ?? {})) {
    const state = providers.get(name as ProviderName | 'sms')
    if (!state) throw new Error(`SABT_SIMULATOR_KNOBS: unknown provider ${name}`)
    state.knobs = { ...state.knobs, ...k }
  }
  const app = Fastify({
    loggerInstance: opts.log.child({ role: 'simulator' }) as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: 75_000,
  })
  const held = new Set<() => void>()

  /** One provider's behaviour for one question: its knobs, then its answer (undefined: replied already). */
  const ask: Ask = async (name, question, request, reply) => {
    const state = providers.get(name)!
    const now = Date.now()
    const key = request.headers['idempotency-key']
    state.arrive(now, typeof key === 'string' ? key : undefined)
    const k = state.knobs
    if (state.overLimit(now)) {
      state.stats.rate_limited++
      reply.code(429).header('retry-after', '1').send({ error: 'rate limited' })
      return undefined
    }
    if (k.outage) {
      state.stats.errors++
      reply.code(503).send({ error: 'outage' })
      return undefined
    }
    if (k.timeout_rate > 0 && Math.random() < k.timeout_rate) {
      state.stats.timeouts++
      // Never answer: hold the request until the caller gives up (or the simulator stops).
      reply.hijack()
      await new Promise<void>((resolve) => {
        const done = () => {
          held.delete(done)
          resolve()
        }
        held.add(done)
        request.raw.socket.once('close', done)
      })
      request.raw.socket.destroy()
      return undefined
    }
    const latency = drawLatency(k)
    if (latency > 0) await new Promise((r) => setTimeout(r, latency))
    if (k.error_rate > 0 && Math.random() < k.error_rate) {
      state.stats.errors++
      reply.code(503).send({ error: 'upstream error' })
      return undefined
    }
    if (!QUESTIONS[name].Check(question)) {
      state.stats.bad_requests++
      reply.code(400).send({ error: 'bad request' })
      return undefined
    }
    const a = answer(name, question, k.fail_percent)
    state.stats.answered++
    if (a.match === false || a.eligible === false) state.stats.no_answers++
    return a
  }

  for (const name of PROVIDERS) {
    app.post(`/${name}`, async (request, reply) => (await ask(name, request.body, request, reply)) ?? reply)
  }
  // The SMS gateway: the same knobs (latency, errors, 429s, rate limit, outage); one delivery per
  // reference however often it is sent (as gateways with a client reference de-duplicate).
  app.post('/sms', async (request, reply) => {
    const state = providers.get('sms')!
    const now = Date.now()
    const body = request.body as { reference?: unknown }
    state.arrive(now, typeof body?.reference === 'string' ? body.reference : undefined)
    const k = state.knobs
    if (state.overLimit(now)) {
      state.stats.rate_limited++
      return reply.code(429).header('retry-after', '1').send({ error: 'rate limited' })
    }
    if (k.outage) {
      state.stats.errors++
      return reply.code(503).send({ error: 'outage' })
    }
    const latency = drawLatency(k)
    if (latency > 0) await new Promise((r) => setTimeout(r, latency))
    if (k.error_rate > 0 && Math.random() < k.error_rate) {
      state.stats.errors++
      return reply.code(503).send({ error: 'upstream error' })
    }
    if (!SmsRequest.Check(request.body)) {
      state.stats.bad_requests++
      return reply.code(400).send({ error: 'bad request' })
    }
    const m = request.body as { to: string; text: string; reference: string }
    const d = sms.accept(m.reference, m.to, m.text, now)
    state.stats.answered++
    return { accepted: true, message_id: d.reference, duplicate: d.requests > 1 }
  })
  const realApis = new RealApis(opts.realApis)
  await app.register(realApiRoutes, { apis: realApis, ask })

  const admin = { preHandler: requireAdmin(opts.adminToken) }
  app.get('/admin/providers', admin, async () =>
    Object.fromEntries([...providers].map(([n, s]) => [n, s.knobs])),
  )
  const validPatch = Compile(KnobsPatch)
  app.put('/admin/providers/:name', admin, async (request, reply) => {
    const state = providers.get((request.params as { name: string }).name as ProviderName)
    if (!state)
      return reply.code(404).send({ statusCode: 404, code: 'SABT_NOT_FOUND', message: 'No such provider' })
    if (!validPatch.Check(request.body))
      return reply.code(422).send({
        statusCode: 422,
        code: 'SABT_VALIDATION',
        message: 'Bad knobs',
        errors: validPatch
          .Errors(request.body)
          .map((e) => ({ field: e.instancePath.slice(1) || '(body)', rule: e.keyword, message: e.message })),
      })
    state.knobs = { ...state.knobs, ...(request.body as KnobsPatch) }
    return state.knobs
  })
  app.get('/admin/stats', admin, async () => ({
    ...Object.fromEntries([...providers].map(([n, s]) => [n, s.stats])),
    real_apis: realApis.stats,
    sms_delivered: sms.delivered.size,
  }))
  app.get('/admin/sms', admin, async () => ({ delivered: [...sms.delivered.values()] }))
  app.post('/admin/oauth/revoke', admin, async () => {
    realApis.revokeTokens()
    return { revoked: true }
  })
  app.post('/admin/stats/reset', admin, async () => {
    realApis.reset()
    sms.reset()
    for (const s of providers.values()) s.reset()
    return { reset: true }
  })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.addHook('onClose', async () => {
    for (const release of [...held]) release()
  })
  return Object.assign(app, { providers, realApis, sms }) as unknown as Simulator
}
