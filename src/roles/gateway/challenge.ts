import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { SabtConfig } from '../../config/campaigns.js'
import { ApiError } from '../../http/errors.js'
import type { ProofOfWork } from '../../http/proof-of-work.js'

const Slug = Type.String({ maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]{0,62}$' })
const Challenge = Type.Object(
  {
    algorithm: Type.String({ description: 'SHA-256' }),
    challenge: Type.String({ description: 'hex SHA-256 of salt + the secret number' }),
    maxnumber: Type.Optional(Type.Integer()),
    salt: Type.String({ description: 'carries the expiry and the campaign as ?expires=…&campaign=…' }),
    signature: Type.String({ description: 'HMAC of the challenge: the server keeps no state' }),
  },
  { additionalProperties: false },
)

/**
 * GET /v1/campaigns/{campaign}/challenge: an ALTCHA challenge (decision 021) for a campaign with a
 * proof-of-work gate. The browser finds the number (about max_number / 2 SHA-256 hashes) and sends
 * base64(JSON {algorithm, challenge, number, salt, signature}) as X-Altcha with the registration.
 */
export async function challengeRoutes(
  app: FastifyInstance,
  opts: { config: SabtConfig; proofOfWork: ProofOfWork },
): Promise<void> {
  app.get(
    '/v1/campaigns/:campaign/challenge',
    {
      schema: {
        tags: ['intake'],
        operationId: 'getChallenge',
        summary: 'A proof-of-work challenge for a campaign with the gate on',
        security: [],
        description:
          'Stateless (signed, expiring, bound to the campaign) and single use. 404 when the campaign does not exist or has no proof-of-work gate.',
        params: Type.Object({ campaign: Slug }),
        response: { 200: Challenge, 404: { $ref: 'ErrorBody#' } },
      },
    },
    async (request, reply) => {
      const c = opts.config.campaigns.get((request.params as { campaign: string }).campaign)
      if (!c?.proofOfWork)
        throw new ApiError(
          'SABT_NOT_FOUND',
          undefined,
          undefined,
          'No such campaign with a proof-of-work gate',
        )
      reply.header('cache-control', 'no-store')
      return opts.proofOfWork.challenge(c.slug, c.proofOfWork.maxNumber, c.proofOfWork.expiresS)
    },
  )
}
