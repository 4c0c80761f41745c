import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyFormbody from '@fastify/formbody'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { SabtConfig } from '../../config/campaigns.js'
import type { Pool } from '../../db/pool.js'
import { replicaLag } from '../../db/replica.js'
import { type AdminAuth, csrfProblem } from '../../http/auth.js'
import type { MqClient } from '../../mq/connection.js'
import type { Publisher } from '../../mq/publisher.js'
import type { Logger } from '../../observability/logger.js'
import { auditLookup, auditReplay, deadList, lookupForOperator, replayDead } from '../../operations/index.js'
import type { Sealer } from '../../privacy/sealing.js'
import type { LiveStats } from './live.js'
import { scarceFragment, scarceRows } from './scarce-view.js'
import {
  countsFragment,
  dashboardPage,
  deadFragment,
  html,
  intakeFragment,
  loginPage,
  lookupFragment,
  processesFragment,
  providersFragment,
  queuesFragment,
  reasonsFragment,
  replicaFragment,
} from './views.js'

export interface DashboardOptions {
  auth: AdminAuth
  live: LiveStats
  mq: MqClient
  /** The primary: dead letters and replay (writes). */
  pool: Pool
  /** Reads that may lag a little (a replica when DATABASE_READ_URL is set): lookups. */
  readPool: Pool
  publisher: Publisher
  config: SabtConfig
  sealer: Sealer
  log: Logger
  queuedWindowMs: number
}

/** Our own page assets (plain CSS and an ES module: no build step), beside src/ and dist/. */
export function publicDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'public', 'dashboard')
}

const require = createRequire(import.meta.url)
/** The files served under /dashboard/assets/: ours, and htmx and uPlot straight from node_modules. */
const ASSETS = new Set([
  '/dashboard.js',
  '/dashboard.css',
  '/htmx.min.js',
  '/uPlot.iife.min.js',
  '/uPlot.min.css',
])

/**
 * The operator dashboard at /dashboard (docs/dashboard.md): a login form that trades the admin
 * token for a session cookie, the page, the fragments htmx polls, the chart series, and the
 * replay action. Everything but the login form and the static assets needs the admin session
 * (or the bearer token); changes also pass the CSRF rules of src/http/auth.ts.
 */
export async function dashboardRoutes(app: FastifyInstance, opts: DashboardOptions): Promise<void> {
  const { auth, live, mq, pool, config, log } = opts
  const guard = auth.guard()
  const actor = (request: FastifyRequest) => ({ operator: auth.operatorOf(request).name, client: request.ip })
  const hide = { hide: true }

  // Forms and htmx post application/x-www-form-urlencoded: accepted here only, never on the API.
  await app.register(fastifyFormbody, { bodyLimit: 4096 })
  await app.register(fastifyStatic, {
    root: [publicDir(), dirname(require.resolve('htmx.org')), dirname(require.resolve('uplot'))],
    prefix: '/dashboard/assets/',
    decorateReply: false,
    index: false,
    allowedPath: (pathName) => ASSETS.has(pathName),
  })

  const page = (reply: FastifyReply, body: string, code = 200) =>
    reply
      .code(code)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('x-frame-options', 'DENY')
      .header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'",
      )
      .send(body)

  app.get('/dashboard/login', { schema: hide }, async (_request, reply) => page(reply, loginPage()))

  app.post('/dashboard/login', { schema: hide }, async (request, reply) => {
    if (csrfProblem(request, false)) return page(reply, loginPage({ error: 'Sign in from this page.' }), 403)
    const token = (request.body as { token?: unknown } | undefined)?.token
    const r = await auth.signIn(request.ip, typeof token === 'string' ? token.trim() : null).catch(() => null)
    if (!r) return page(reply, loginPage({ error: 'The database is not reachable: try again shortly.' }), 503)
    if (!r.ok) {
      if (r.lockedForS > 0) {
        log.warn({ event: 'admin.login_locked', ip: request.ip })
        reply.header('retry-after', String(r.lockedForS))
        return page(
          reply,
          loginPage({ error: 'Too many wrong tokens from this address: try again later.' }),
          429,
        )
      }
      log.warn({ event: 'admin.login_failed', ip: request.ip })
      // A little slower on failure: guessing a 256-bit token is hopeless anyway, but no need to help.
      await new Promise((resolve) => setTimeout(resolve, 250))
      return page(reply, loginPage({ error: 'Wrong token.' }), 401)
    }
    log.info({ event: 'admin.login', operator: r.operator.name, ip: request.ip })
    return reply
      .header('set-cookie', await auth.startSession(request, r.operator))
      .redirect('/dashboard', 303)
  })

  app.post('/dashboard/logout', { schema: hide, onRequest: guard }, async (request, reply) => {
    log.info({ event: 'admin.logout', operator: auth.operatorOf(request).name, ip: request.ip })
    reply.header('set-cookie', await auth.endSession(request)).header('hx-redirect', '/dashboard/login')
    return reply.code(204).send()
  })

  app.get('/dashboard', { schema: hide }, async (request, reply) => {
    const who = await auth.authenticate(request).catch(() => null)
    if (!who) return reply.redirect('/dashboard/login', 303)
    return page(
      reply,
      dashboardPage({
        checks: [...config.checks.keys()],
        queues: live.watched,
        replica: opts.readPool !== opts.pool,
        scarce: [...config.campaigns.values()].some((c) => c.scarce),
      }),
    )
  })

  const fragment = (path: string, render: (request: FastifyRequest) => Promise<string> | string) =>
    app.get(`/dashboard/fragments/${path}`, { schema: hide, onRequest: guard }, async (request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(await render(request)),
    )

  fragment('intake', () => intakeFragment(live.intake()))
  fragment('queues', () => queuesFragment(live.queues(), mq.connected))
  fragment('providers', () => providersFragment(live.providers(), live.held()))
  fragment('processes', () => processesFragment(live.processes(), mq.connected))
  fragment('counts', async () => countsFragment(await live.statusCounts()))
  fragment('reasons', async () => reasonsFragment(await live.rejectionReasons()))
  if (opts.readPool !== opts.pool)
    fragment('replica', async () =>
      replicaFragment(await replicaLag(opts.pool, opts.readPool).catch(() => null)),
    )
  fragment('dead', async () => deadFragment(await deadList(mq, pool, { limit: 50 })))
  fragment('scarce', async () => scarceFragment(await scarceRows(opts.readPool, config)))

  // A national id in a URL would end up in proxy logs and browser history: the lookup is a POST.
  app.post('/dashboard/fragments/lookup', { schema: hide, onRequest: guard }, async (request, reply) => {
    const q = (request.body as { q?: unknown } | undefined)?.q
    let body: string
    if (typeof q === 'string' && q.length <= 64) {
      const found = await lookupForOperator(
        { pool: opts.readPool, config, sealer: opts.sealer, queuedWindowMs: opts.queuedWindowMs },
        q,
      )
      await auditLookup(pool, log, actor(request), found)
      body = lookupFragment(found)
    } else body = html`<p class="error">Enter a registration id or a national id.</p>`.s
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body)
  })

  app.post('/dashboard/actions/replay', { schema: hide, onRequest: guard }, async (request, reply) => {
    const raw = (request.body as { check?: unknown } | undefined)?.check
    const check = typeof raw === 'string' && raw !== '' ? raw : undefined
    let note: string
    if (check !== undefined && check !== 'callback' && !config.checks.has(check))
      note = `No check named ${check}.`
    else if (!mq.connected) note = 'RabbitMQ is not reachable: nothing was replayed.'
    else {
      const r = await replayDead({ mq, pool, publisher: opts.publisher, config, log }, { check })
      await auditReplay(pool, log, actor(request), { kind: 'check', check, ...r })
      note = `Replayed ${r.replayed} dead letter(s)${r.kept ? `; ${r.kept} left` : ''}${r.superseded ? `; ${r.superseded} not asked again (another record of the same person holds the place)` : ''}${r.unconfigured ? `; ${r.unconfigured} kept: their campaign or check is not in this configuration` : ''}.`
    }
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(deadFragment(await deadList(mq, pool, { limit: 50 }), note))
  })

  app.get('/dashboard/series', { schema: hide, onRequest: guard }, async (request, reply) => {
    const since = Number((request.query as { since?: string }).since ?? 0)
    reply.header('cache-control', 'no-store')
    return live.series(Number.isFinite(since) ? since : 0)
  })
}
