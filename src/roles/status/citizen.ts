import { randomInt, randomUUID, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { SabtConfig } from '../../config/campaigns.js'
import {
  type LookupLimits,
  normaliseTrackingCode,
  registrationOfCode,
  requestLookup,
  showTrackingCode,
  trackingCodeOf,
  verifyLookup,
} from '../../db/citizen.js'
import type { Pool } from '../../db/pool.js'
import { normaliseMobile } from '../../domain/mobile.js'
import { checkNationalId } from '../../domain/national-id.js'
import { ApiError } from '../../http/errors.js'
import type { MqClient } from '../../mq/connection.js'
import { ATTEMPT_HEADER, encodeCheckBatch } from '../../mq/messages.js'
import type { Publisher } from '../../mq/publisher.js'
import { SMS_ROUTES } from '../../mq/topology.js'
import type { Logger } from '../../observability/logger.js'
import { isUuid, lookupThroughReplica, publicStatus } from '../../operations/index.js'
import { clientIndex, mobileIndex, openField, otpHash, sealOtp } from '../../privacy/personal-fields.js'
import type { Sealer } from '../../privacy/sealing.js'
import { RegistrationStatus } from './routes.js'

export interface CitizenRouteOptions {
  pool: Pool
  readPool: Pool
  mq: MqClient
  publisher: Publisher
  config: SabtConfig
  sealer: Sealer
  log: Logger
  queuedWindowMs: number
  codeTtlS: number
  limits: LookupLimits
  /** How long a code's SMS is left to its own message before the outbox sweeper sends it again. */
  smsLeaseMs: number
}

const Slug = Type.String({ maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]{0,62}$' })
const Person = {
  national_id: Type.String({ maxLength: 32, description: 'کد ملی: 10 digits (Persian digits accepted)' }),
  mobile: Type.String({ maxLength: 32, description: '09xxxxxxxxx (or +98…)' }),
}
const WithCode = Type.Object(
  { ...RegistrationStatus.properties, tracking_code: Type.Optional(Type.String()) },
  { additionalProperties: false },
)
const LookupAnswer = Type.Object(
  {
    status: Type.Literal('sent_if_registered', {
      description: 'the same answer whether or not the person is registered here',
    }),
    expires_in_s: Type.Integer(),
  },
  { additionalProperties: false },
)

/**
 * The citizen's own routes (issue 14, decision 021): a registration followed by its tracking code,
 * and "am I registered?" — a one-time code sent only to the mobile of a registration with that
 * national id and mobile, answering the same either way, then verified for the status and code.
 */
export async function citizenRoutes(app: FastifyInstance, opts: CitizenRouteOptions): Promise<void> {
  const { sealer, config } = opts
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('cache-control', 'no-store')
    return payload
  })
  const campaignOf = (slug: string) => {
    const c = config.campaigns.get(slug)
    if (!c) throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'No such campaign')
    return c
  }
  const status = async (id: string) => {
    const view = await lookupThroughReplica(opts.readPool, opts.pool, config, id, opts.queuedWindowMs)
    if (view.kind === 'unknown')
      throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'No such registration')
    const code = await trackingCodeOf(opts.pool, id)
    return { ...publicStatus(view), ...(code ? { tracking_code: showTrackingCode(code) } : {}) }
  }
  const person = (body: { national_id: string; mobile: string }) => {
    const nid = checkNationalId(body.national_id)
    const mobile = normaliseMobile(body.mobile)
    const errors = [
      ...(nid.ok ? [] : [{ field: 'national_id', rule: nid.rule, message: 'not a valid national id' }]),
      ...(mobile.ok ? [] : [{ field: 'mobile', rule: mobile.rule, message: 'not a mobile number' }]),
    ]
    if (!nid.ok || !mobile.ok) throw new ApiError('SABT_VALIDATION', errors)
    return {
      nationalId: nid.value,
      mobile: mobile.value,
      nationalIdIndex: sealer.blindIndex(nid.value),
      mobileIndex: mobileIndex(sealer, mobile.value),
    }
  }
  const codeHash = (lookupId: string, code: string) => otpHash(sealer, lookupId, code)

  app.get(
    '/v1/campaigns/:campaign/registrations/:ref',
    {
      schema: {
        tags: ['status'],
        operationId: 'getRegistrationByTrackingCode',
        summary: 'Follow a registration by its tracking code (or its id)',
        security: [],
        description:
          'The tracking code sent by SMS (کد رهگیری: 8 characters, dashes, spaces and case ignored) or the registration id: the same answer as getRegistration, with the tracking code.',
        params: Type.Object({ campaign: Slug, ref: Type.String({ maxLength: 64 }) }),
        response: {
          200: WithCode,
          202: WithCode,
          400: { $ref: 'ErrorBody#' },
          404: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request, reply) => {
      const { campaign, ref } = request.params as { campaign: string; ref: string }
      campaignOf(campaign)
      let id: string | null = isUuid(ref) ? ref.toLowerCase() : null
      if (!id) {
        const code = normaliseTrackingCode(ref)
        if (!code)
          throw new ApiError('SABT_INVALID_ID', [
            { field: 'ref', rule: 'tracking_code', message: 'must be a tracking code or a registration id' },
          ])
        id = await registrationOfCode(opts.pool, campaign, code)
        if (!id) throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'No such registration')
      }
      const view = await status(id)
      if ('campaign' in view && view.campaign !== campaign)
        throw new ApiError('SABT_NOT_FOUND', undefined, undefined, 'No such registration')
      if (view.status === 'queued') reply.code(202)
      return view
    },
  )

  app.post(
    '/v1/campaigns/:campaign/lookup',
    {
      schema: {
        tags: ['status'],
        operationId: 'requestLookupCode',
        summary: 'Am I registered? Ask for a one-time code',
        security: [],
        description:
          'Sends a one-time code by SMS to the mobile, only if a registration in this campaign has this national id and this mobile; the answer is the same either way. At most SABT_LOOKUP_PER_ID_PER_DAY codes a day per national id (registered or not), SABT_LOOKUP_PER_MOBILE_PER_DAY per mobile, SABT_LOOKUP_PER_CLIENT_PER_HOUR per client address: then 429 with Retry-After, naming the rule.',
        params: Type.Object({ campaign: Slug }),
        body: Type.Object(Person, { additionalProperties: false }),
        response: {
          202: LookupAnswer,
          404: { $ref: 'ErrorBody#' },
          422: { $ref: 'ErrorBody#' },
          429: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request, reply) => {
      const { campaign } = request.params as { campaign: string }
      const c = campaignOf(campaign)
      const p = person(request.body as { national_id: string; mobile: string })
      const id = randomUUID()
      const made = await requestLookup(opts.pool, {
        id,
        campaign: c.slug,
        nationalIdIndex: p.nationalIdIndex,
        mobileIndex: p.mobileIndex,
        clientIndex: clientIndex(sealer, request.ip),
        ttlS: opts.codeTtlS,
        limits: opts.limits,
        matches: (reg) => {
          try {
            return openField(sealer, reg.id, 'mobile', reg.mobile_sealed, reg.key_id) === p.mobile
          } catch {
            return false
          }
        },
        code: () => {
          const code = String(randomInt(0, 1_000_000)).padStart(6, '0')
          return {
            hash: codeHash(id, code),
            sealed: sealOtp(sealer, id, code),
            keyId: sealer.currentKeyId,
          }
        },
        smsLeaseMs: opts.smsLeaseMs,
      })
      if (made.kind === 'limited')
        throw new ApiError(
          'SABT_RATE_LIMITED',
          [{ field: 'national_id', rule: made.rule, message: `too many codes asked (${made.rule})` }],
          made.retryAfterS,
        )
      if (made.registration && c.messages)
        // Not awaited: the answer must not take longer for a registered person. A publish that
        // fails leaves the code owed; the outbox sweeper sends it after SABT_SMS_LEASE_MS.
        opts.publisher
          .publish(
            opts.mq.names.checkExchange,
            SMS_ROUTES.otp,
            encodeCheckBatch({ check: SMS_ROUTES.otp, campaign: c.slug, ids: [id] }),
            { messageId: `${id}:otp`, headers: { [ATTEMPT_HEADER]: 0 } },
          )
          .catch((err: unknown) =>
            opts.log.warn({ event: 'lookup.publish_failed', err: (err as Error).message }),
          )
      reply.code(202)
      return { status: 'sent_if_registered' as const, expires_in_s: opts.codeTtlS }
    },
  )

  app.post(
    '/v1/campaigns/:campaign/lookup/verify',
    {
      schema: {
        tags: ['status'],
        operationId: 'verifyLookupCode',
        summary: 'Am I registered? Give the one-time code: the status and tracking code',
        security: [],
        description:
          'The code of the latest request for this national id and mobile, single use. A wrong, used or expired code (or none sent: not registered) is 422 SABT_CODE_INVALID; five wrong codes lock that request (429 SABT_LOOKUP_LOCKED until it expires).',
        params: Type.Object({ campaign: Slug }),
        body: Type.Object(
          { ...Person, code: Type.String({ maxLength: 16, description: 'the 6 digits sent by SMS' }) },
          { additionalProperties: false },
        ),
        response: {
          200: WithCode,
          404: { $ref: 'ErrorBody#' },
          422: { $ref: 'ErrorBody#' },
          429: { $ref: 'ErrorBody#' },
        },
      },
    },
    async (request) => {
      const { campaign } = request.params as { campaign: string }
      const c = campaignOf(campaign)
      const body = request.body as { national_id: string; mobile: string; code: string }
      const p = person(body)
      const code = body.code.replace(/[۰-۹]/g, (d) => String(d.charCodeAt(0) - 0x06f0)).trim()
      const verdict = await verifyLookup(opts.pool, {
        campaign: c.slug,
        nationalIdIndex: p.nationalIdIndex,
        mobileIndex: p.mobileIndex,
        hashOf: (lookupId) => codeHash(lookupId, code),
        equal: (a, b) => a.length === b.length && timingSafeEqual(a, b),
      })
      if (verdict.kind === 'locked')
        throw new ApiError(
          'SABT_LOOKUP_LOCKED',
          [{ field: 'code', rule: 'wrong_codes', message: 'five wrong codes' }],
          verdict.retryAfterS,
        )
      if (verdict.kind === 'invalid')
        throw new ApiError('SABT_CODE_INVALID', [
          { field: 'code', rule: 'one_time_code', message: 'wrong, used or expired' },
        ])
      return status(verdict.registrationId)
    },
  )
}
