import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'

/** public/citizen, from src/roles/gateway or dist/roles/gateway. */
export function citizenDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'public', 'citizen')
}

const FILES = new Set(['/citizen.js', '/citizen.css'])

/**
 * The citizen page (issue 14 item 4): Persian, right to left, mobile first, plain files with no
 * build step — the registration form (with the proof of work), the tracking code, the lookup.
 * Served by the gateway, the public face; its API calls go to the same origin.
 */
export async function citizenPageRoutes(app: FastifyInstance): Promise<void> {
  const headers = {
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'content-security-policy':
      "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
  }
  const html = readFileSync(resolve(citizenDir(), 'index.html'), 'utf8')
  await app.register(fastifyStatic, {
    root: citizenDir(),
    prefix: '/citizen/',
    decorateReply: false,
    wildcard: false,
    index: false,
    allowedPath: (pathName) => FILES.has(pathName),
    setHeaders: (res) => {
      for (const [k, v] of Object.entries(headers)) res.header(k, v)
      res.header('cache-control', 'public, max-age=300')
    },
  })
  app.get('/citizen', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/citizen/', 302))
  app.get('/citizen/', { schema: { hide: true } }, async (_request, reply) => {
    for (const [k, v] of Object.entries(headers)) reply.header(k, v)
    reply.header('cache-control', 'no-cache')
    return reply.type('text/html; charset=utf-8').send(html)
  })
}
