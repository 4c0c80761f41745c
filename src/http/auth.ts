import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ApiError } from './errors.js'

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** The bearer token of a request (`Authorization: Bearer …`), or null. */
export function bearerToken(request: FastifyRequest): string | null {
  const h = request.headers.authorization
  if (typeof h !== 'string') return null
  const m = /^Bearer\s+(.+)$/i.exec(h.trim())
  return m ? m[1]!.trim() : null
}

/**
 * A preHandler that lets a request through only with the admin token (SABT_ADMIN_TOKEN), compared
 * in constant time. With no token configured, admin routes refuse everyone.
 */
export function requireAdmin(token: string | null) {
  const expected = token ? digest(token) : null
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const given = bearerToken(request)
    if (!expected || !given || !timingSafeEqual(digest(given), expected))
      throw new ApiError('SABT_UNAUTHORIZED', [
        { field: 'authorization', rule: 'admin_token', message: 'requires the admin token' },
      ])
  }
}
