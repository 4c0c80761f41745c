import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { errorCatalogueMarkdown } from './errors.js'

/** The OpenAPI document at `/openapi.json`, generated from the route schemas, and Swagger UI at `/docs`. Registered before the routes, so it sees them all. */
export const apiDocs = fp(
  async (app: FastifyInstance) => {
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'Sabt API',
          version: '1',
          license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
          description: `Sabt takes registrations at surge rates and verifies them in the background.\n\n### Errors\n\nEvery error answers JSON \`{statusCode, code, message, errors?: [{field, rule, message}]}\`.\n\n${errorCatalogueMarkdown()}`,
        },
        // Relative: the document is served by the deployment it describes, behind whatever host it has.
        servers: [{ url: '/', description: 'this deployment' }],
        components: {
          securitySchemes: {
            adminToken: { type: 'http', scheme: 'bearer', description: 'SABT_ADMIN_TOKEN' },
            partnerKey: {
              type: 'http',
              scheme: 'bearer',
              description: 'a partner API key (sabt keys create), also accepted as X-Api-Key',
            },
          },
        },
      },
      // OpenAPI 3.0's Schema Object has no `propertyNames` (JSON Schema 2019+ only): the validator
      // keeps it, the published document carries it as an extension a partner's tooling accepts.
      transformObject: (doc) =>
        renameKey(
          'openapiObject' in doc ? doc.openapiObject : doc.swaggerObject,
          'propertyNames',
          'x-property-names',
        ),
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => (json.$id as string) || `def-${i}`,
      },
    })
    await app.register(fastifySwaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } })

    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'sabt-api-docs' },
)

/** A copy of a JSON document with every object key `from` renamed `to`, at any depth. */
function renameKey<T>(value: T, from: string, to: string): T {
  if (Array.isArray(value)) return value.map((v) => renameKey(v, from, to)) as T
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k === from ? to : k] = renameKey(v, from, to)
  return out as T
}
