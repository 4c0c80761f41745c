import type { FastifyError, FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable } from '../db/errors.js'
import { ApiError, ErrorBodySchema, type ErrorCode, fieldErrorsFromAjv } from './errors.js'
import { ReadinessSchema } from './health.js'

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'SABT_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_BODY_TOO_LARGE: 'SABT_BODY_TOO_LARGE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'SABT_INVALID_JSON',
  FST_ERR_CTP_INVALID_JSON_BODY: 'SABT_INVALID_JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'SABT_BAD_REQUEST',
}

/** Every refusal and failure answers the catalogue's JSON body (src/http/errors.ts), never Fastify's own. */
export const errorAnswers = fp(
  async (app: FastifyInstance) => {
    app.addSchema(ErrorBodySchema)
    app.addSchema(ReadinessSchema)

    app.setErrorHandler((error: FastifyError | ApiError, request, reply) => {
      let api: ApiError
      if (error instanceof ApiError) api = error
      else if ((error as FastifyError).validation) {
        const fe = error as FastifyError
        const where = !fe.validationContext || fe.validationContext === 'body' ? '' : fe.validationContext
        api = new ApiError('SABT_VALIDATION', fieldErrorsFromAjv(fe.validation as never, where))
      } else if ((error as FastifyError).code && FASTIFY_CODES[(error as FastifyError).code]) {
        const code = FASTIFY_CODES[(error as FastifyError).code]!
        const rule =
          code === 'SABT_BODY_TOO_LARGE'
            ? { field: '(body)', rule: 'max_bytes', message: 'is larger than the body limit' }
            : code === 'SABT_UNSUPPORTED_MEDIA_TYPE'
              ? { field: 'content-type', rule: 'media_type', message: 'must be application/json' }
              : { field: '(body)', rule: 'json', message: 'must be a JSON document' }
        api = new ApiError(code, [rule])
      } else if (isDatabaseUnavailable(error)) {
        // PostgreSQL away (refused, timed out, shutting down, read-only): a 503 the client may
        // retry, whichever route met it — never a 500 that says Sabt is broken.
        api = new ApiError('SABT_NOT_READY', undefined, 5, 'The database is unavailable; retry later')
      } else if ((error as FastifyError).statusCode && (error as FastifyError).statusCode! < 500) {
        api = new ApiError('SABT_BAD_REQUEST', undefined, undefined, (error as Error).message)
      } else {
        request.log.error(
          { event: 'http.internal_error', err: error, route: request.routeOptions.url },
          'unhandled error',
        )
        api = new ApiError('SABT_INTERNAL')
      }
      if (api.retryAfterS) reply.header('retry-after', String(api.retryAfterS))
      // Answered before the body was read (415, 413…): close, or Node would read and discard the rest
      // of it to keep the connection, however large or slow it is.
      if (!request.raw.complete) reply.header('connection', 'close')
      reply.code(api.status).type('application/json').send(api.body())
    })

    app.setNotFoundHandler((_request, reply) => {
      const api = new ApiError('SABT_NOT_FOUND')
      reply.code(404).send(api.body())
    })
  },
  { name: 'sabt-error-answers' },
)
