import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { SabtConfig } from '../../config/campaigns.js'
import {
  type FieldError,
  normaliseRegistration,
  type Registration,
  type RegistrationInput,
} from '../../domain/registration.js'
import { ApiError, fieldErrorsFromAjv } from '../../http/errors.js'
import type { ProofOfWork } from '../../http/proof-of-work.js'
import { compileBodyValidator, fastifyBodyValidator } from '../../http/validation.js'
import type { Metrics } from '../../observability/metrics.js'
import type { ClientLimit } from './client-limit.js'
import type { Intake } from './intake.js'
import type { Partner, PartnerKeys } from './partners.js'
import { Accepted, BatchBody, BatchEnvelope, BatchResult, RegistrationBody } from './schemas.js'

export interface GatewayRouteOptions {
  config: SabtConfig
  intake: Intake
  metrics: Metrics
  publicUrl: string
  retryAfterS: number
  batchBodyLimit: number
  batchMaxRecords: number
  /** Batch intake is for partners: each needs an API key, and has a records-per-second limit. */
  partners: PartnerKeys
  /** The single-registration intake's per-client limit (null: off, SABT_CLIENT_RATE=0). */
  clientLimit: ClientLimit | null
  /** The proof-of-work gate of campaigns that declare `proof_of_work` (decision 021). */
  proofOfWork?: ProofOfWork
}

const errorResponses = {
  400: { $ref: 'ErrorBody#' },
  413: { $ref: 'ErrorBody#' },
  415: { $ref: 'ErrorBody#' },
  422: { $ref: 'ErrorBody#' },
  503: { $ref: 'ErrorBody#' },
}

/** The rules beyond the schema: a known, open campaign; then the domain's normalisation and checks. */
function admit(
  config: SabtConfig,
  input: RegistrationInput,
  now: number,
): { ok: true; value: Registration } | { ok: false; error: ApiError } {
  const campaign = config.campaigns.get(input.campaign)
  if (!campaign)
    return {
      ok: false,
      error: new ApiError('SABT_UNKNOWN_CAMPAIGN', [
        {
          field: 'campaign',
          rule: 'known_campaign',
          message: `no campaign named ${JSON.stringify(input.campaign.slice(0, 63))}`,
        },
      ]),
    }
  if (
    (campaign.opensAt !== null && now < campaign.opensAt) ||
    (campaign.closesAt !== null && now >= campaign.closesAt)
  )
    return {
      ok: false,
      error: new ApiError('SABT_CAMPAIGN_NOT_OPEN', [
        { field: 'campaign', rule: 'open', message: 'the campaign is not open for registration now' },
      ]),
    }
  const r = normaliseRegistration(input, now)
  if (!r.ok) return { ok: false, error: new ApiError('SABT_VALIDATION', r.errors) }
  return { ok: true, value: r.value }
}

export async function gatewayRoutes(app: FastifyInstance, opts: GatewayRouteOptions): Promise<void> {
  const partnerOf = new WeakMap<FastifyRequest, Partner>()
  const { config, intake, metrics } = opts
  const statusUrl = (id: string) => `${opts.publicUrl}/v1/registrations/${id}`
  app.addSchema(RegistrationBody)
  app.addSchema(Accepted)

  const reject = (err: ApiError): never => {
    metrics.intakeRejected.inc({ code: err.code })
    throw err
  }

  // One validator for a registration, whichever route it comes by. A valid one has at most 27
  // members (6 fields, attributes and its 20 answers); far more is answered with one error.
  const validateRegistration = compileBodyValidator(RegistrationBody, { maxMembers: 64 })
  const validateEnvelope = compileBodyValidator(BatchEnvelope(opts.batchMaxRecords), { maxMembers: 64 })

  app.post(
    '/v1/registrations',
    {
      ...(opts.clientLimit ? { onRequest: opts.clientLimit.hook() } : {}),
      validatorCompiler: ({ httpPart }) =>
        httpPart === 'body' ? fastifyBodyValidator(validateRegistration) : () => true,
      schema: {
        tags: ['intake'],
        operationId: 'createRegistration',
        summary: 'Submit one registration',
        security: [],
        description:
          'Answers 202 only after RabbitMQ has confirmed the registration into the intake queue. 503 (with Retry-After) means it was not taken: retry. 429 (with Retry-After): too many requests from this client address (SABT_CLIENT_RATE). 403 SABT_PROOF_OF_WORK: the campaign has a proof-of-work gate and the X-Altcha header does not carry a valid, unused solution of its challenge (getChallenge).',
        body: { $ref: 'Registration#' },
        response: {
          202: { $ref: 'Accepted#' },
          403: { $ref: 'ErrorBody#' },
          429: { $ref: 'ErrorBody#' },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const admitted = admit(config, request.body as RegistrationInput, Date.now())
      if (!admitted.ok) return reject(admitted.error)
      const pow = config.campaigns.get(admitted.value.campaign)?.proofOfWork
      if (pow && opts.proofOfWork) {
        const header = request.headers['x-altcha']
        const rule = await opts.proofOfWork.check(
          admitted.value.campaign,
          typeof header === 'string' ? header : undefined,
        )
        if (rule)
          return reject(
            new ApiError('SABT_PROOF_OF_WORK', [
              {
                field: 'x-altcha',
                rule: `proof_of_work.${rule}`,
                message: `GET /v1/campaigns/${admitted.value.campaign}/challenge, solve it, send the solution in X-Altcha`,
              },
            ]),
          )
      }
      if (!intake.ready) {
        metrics.intakeShed.inc({ reason: 'unavailable' })
        throw new ApiError('SABT_BROKER_UNAVAILABLE', undefined, opts.retryAfterS)
      }
      const id = await intake.submit(admitted.value)
      const url = statusUrl(id)
      reply.code(202).header('location', url)
      return { id, status_url: url }
    },
  )

  app.post(
    '/v1/registrations/batch',
    {
      // Credentials first: an unauthenticated client does not get its megabyte parsed.
      onRequest: async (request) => {
        partnerOf.set(request, opts.partners.authenticate(request))
      },
      bodyLimit: opts.batchBodyLimit,
      schema: {
        tags: ['intake'],
        operationId: 'createRegistrations',
        summary: `Submit up to ${opts.batchMaxRecords} registrations; each record is answered on its own (partners, with an API key)`,
        security: [{ partnerKey: [] }],
        description:
          "202 when every record was accepted; 207 when some were not (see each result: 202, 422, 429 or 503). Valid records are published concurrently; each accepted one is publisher-confirmed. A key's budget is its records per second, burst included: records past it are answered 429 one by one (Retry-After on the response), and a request with no budget left gets 429 whole.",
        body: BatchBody(opts.batchMaxRecords),
        response: {
          202: BatchResult,
          207: BatchResult,
          401: { $ref: 'ErrorBody#' },
          429: { $ref: 'ErrorBody#' },
          ...errorResponses,
        },
      },
      // The envelope is validated here; the records one by one below, so one bad record does not
      // refuse the others. (The documented schema above shows what each record must be.)
      validatorCompiler: ({ httpPart }) =>
        httpPart === 'body' ? fastifyBodyValidator(validateEnvelope) : () => true,
    },
    async (request, reply) => {
      const records = (request.body as { records: unknown[] }).records
      const partner = partnerOf.get(request)!
      // The key's budget covers the first `admitted` records; the rest are answered 429 each.
      const admitted = opts.partners.admit(partner, records.length)
      const rate = partner.row.records_per_second
      if (admitted < records.length)
        reply.header('retry-after', String(Math.max(1, Math.ceil((records.length - admitted) / rate))))
      if (!intake.ready) {
        metrics.intakeShed.inc({ reason: 'unavailable' }, records.length)
        throw new ApiError('SABT_BROKER_UNAVAILABLE', undefined, opts.retryAfterS)
      }
      const now = Date.now()
      const results = await Promise.all(
        records.map(async (record, index) => {
          let error: ApiError
          const invalid = index < admitted ? validateRegistration(record) : null
          if (index >= admitted) {
            error = new ApiError('SABT_RATE_LIMITED', [
              {
                field: `records/${index}`,
                rule: 'rate_limit',
                message: `past this key's budget: at most ${rate} records per second (send it again later)`,
              },
            ])
          } else if (invalid) {
            error = new ApiError('SABT_VALIDATION', fieldErrorsFromAjv(invalid))
          } else {
            const admitted = admit(config, record as RegistrationInput, now)
            if (admitted.ok) {
              try {
                const id = await intake.submit(admitted.value)
                return { index, status: 202, id, status_url: statusUrl(id) }
              } catch (err) {
                if (!(err instanceof ApiError)) throw err
                error = err
              }
            } else error = admitted.error
          }
          if (error.status < 500) metrics.intakeRejected.inc({ code: error.code })
          const r: { index: number; status: number; code: string; message: string; errors?: FieldError[] } = {
            index,
            status: error.status,
            code: error.code,
            message: error.message,
          }
          if (error.errors) r.errors = error.errors
          return r
        }),
      )
      const accepted = results.filter((r) => r.status === 202).length
      reply.code(accepted === records.length ? 202 : 207)
      return { accepted, rejected: records.length - accepted, results }
    },
  )
}
