/**
 * Floor 2: a bare Fastify route with the gateway's JSON schema (the same `RegistrationBody`, the same
 * Ajv options: no stripping, no coercion, all errors), answering 202. What the gateway adds on top of
 * this — domain rules, id, publish and confirm, metrics — is the gateway's own cost.
 */
import Fastify from 'fastify'
import { RegistrationBody } from '../../src/roles/gateway/schemas.js'

const app = Fastify({
  logger: false,
  bodyLimit: 16_384,
  keepAliveTimeout: 75_000,
  ajv: {
    customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true },
  },
})
app.get('/healthz', async () => ({ status: 'ok' }))
app.post(
  '/v1/registrations',
  {
    schema: {
      body: RegistrationBody,
      response: { 202: { type: 'object', properties: { status: { type: 'string' } } } },
    },
  },
  async (_request, reply) => {
    reply.code(202)
    return { status: 'accepted' }
  },
)
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 8082) })
process.on('SIGTERM', () => app.close().then(() => process.exit(0)))
