import { isUtf8 } from 'node:buffer'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import sjson from 'secure-json-parse'
import { ApiError } from './errors.js'

/** JSON only, valid UTF-8 only, `__proto__` and `constructor.prototype` refused. */
export const jsonBody = fp(
  async (app: FastifyInstance) => {
    // JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset is refused before it is read,
    // rather than decoded as something its sender did not mean.
    app.addHook('preParsing', async (request, _reply, payload) => {
      const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers['content-type'] ?? '')?.[1]
      if (charset !== undefined && !/^utf-?8$/i.test(charset))
        throw new ApiError('SABT_UNSUPPORTED_MEDIA_TYPE', [
          { field: 'content-type', rule: 'charset', message: 'must be utf-8 (or not given)' },
        ])
      return payload
    })

    // JSON only, valid UTF-8 only. (Fastify also parses text/plain by default: not here.)
    app.removeAllContentTypeParsers()
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      const buf = body as Buffer
      if (!isUtf8(buf)) {
        done(
          new ApiError('SABT_INVALID_ENCODING', [
            { field: '(body)', rule: 'utf8', message: 'must be valid UTF-8' },
          ]),
          undefined,
        )
        return
      }
      if (buf.length === 0) {
        done(
          new ApiError('SABT_INVALID_JSON', [
            { field: '(body)', rule: 'json', message: 'must be a JSON document' },
          ]),
          undefined,
        )
        return
      }
      try {
        done(null, sjson.parse(buf.toString('utf8'), { protoAction: 'error', constructorAction: 'error' }))
      } catch (err) {
        const forbidden = /prototype property|constructor property/i.test((err as Error).message)
        done(
          new ApiError(
            'SABT_INVALID_JSON',
            forbidden
              ? [
                  {
                    field: '(body)',
                    rule: 'forbidden_key',
                    message: 'must not contain __proto__ or constructor.prototype',
                  },
                ]
              : [{ field: '(body)', rule: 'json', message: 'must be a JSON document' }],
          ),
          undefined,
        )
      }
    })
  },
  { name: 'sabt-json-body' },
)
