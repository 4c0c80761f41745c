import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, join, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { defaultConfigPath, loadConfigFile } from '../src/config/campaigns.js'
import { EnvSchema, loadEnv } from '../src/config/env.js'
import { secretsFor } from '../src/config/secrets.js'
import { DB_ROLES } from '../src/db/roles.js'
import { newKey } from '../src/privacy/sealing.js'
import { ROLES } from '../src/runtime/start.js'
import {
  AMQP_URL,
  dropDatabase,
  dropTopology,
  sql,
  testDatabaseUrl,
  uniqueName,
  waitFor,
} from './support/harness.js'

/**
 * The deployment files: docker-compose.yml (+ the cluster override), Traefik's static config,
 * the RabbitMQ and PostgreSQL settings, .env.example and the Dockerfile. Static checks first
 * (structure, routing, environment, secrets, the timeout chain), then the production build:
 * the Dockerfile's own build steps in a copy of the repository, and every role started from it.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8')

interface Healthcheck {
  test?: string[] | string
  disable?: boolean
  interval?: string
  timeout?: string
}
interface Service {
  image?: string
  build?: string | { context: string; target?: string }
  command?: string[]
  healthcheck?: Healthcheck
  depends_on?: Record<string, { condition: string }>
  deploy?: { replicas?: number }
  profiles?: string[]
  environment?: Record<string, string | number | null>
  labels?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  stop_grace_period?: string
  restart?: string
  networks?: string[] | Record<string, unknown>
}
interface ComposeFile {
  version?: unknown
  services: Record<string, Service>
  networks?: Record<string, { name?: string; internal?: boolean }>
  'x-client-timeout'?: string
  [key: string]: unknown
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as ComposeFile
const cluster = parse(read('docker-compose.cluster.yml'), { merge: true }) as ComposeFile
const replica = parse(read('docker-compose.replica.yml'), { merge: true }) as ComposeFile
const traefik = parse(read('deploy/traefik/traefik.yml')) as {
  entryPoints: Record<
    string,
    {
      address: string
      transport?: {
        respondingTimeouts?: { readTimeout?: string; writeTimeout?: string; idleTimeout?: string }
        lifeCycle?: { graceTimeOut?: string }
      }
    }
  >
  serversTransport: {
    forwardingTimeouts: { dialTimeout: string; responseHeaderTimeout: string; idleConnTimeout: string }
  }
  providers: { docker: { endpoint: string; exposedByDefault: boolean; network: string } }
  ping?: unknown
  accessLog?: { format?: string; fields?: { headers?: { defaultMode?: string } } }
}
const services = compose.services

/** `${VAR:-default}` → default, `${VAR:?message}` → '' (required), `${VAR}` → ''. */
function composeDefault(value: string | number | null | undefined): string {
  return String(value ?? '').replace(
    /\$\{[A-Z0-9_]+(?::?-([^}]*)|:?\?[^}]*)?\}/g,
    (_m, def?: string) => def ?? '',
  )
}

/** Go-style durations as Traefik and Compose write them ("500ms", "10s", "15min", "1m30s"). */
function durationMs(d: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }
  let total = 0
  let rest = d.trim()
  if (!rest) throw new Error('empty duration')
  while (rest) {
    const m = /^(\d+(?:\.\d+)?)(ms|min|s|m|h)/.exec(rest)
    if (!m) throw new Error(`bad duration ${d}`)
    total += Number(m[1]) * units[m[2]!]!
    rest = rest.slice(m[0].length)
  }
  return total
}

function schemaDefault(key: string): unknown {
  return (EnvSchema.properties as Record<string, { default?: unknown }>)[key]?.default
}

/** The Sabt containers: the services built from this repository. */
const appServices = Object.entries(services).filter(([, s]) => s.build !== undefined)
const startServices = appServices.filter(([, s]) => s.command?.[0] === 'start')
const roleOf = (s: Service) => s.command?.[s.command.indexOf('--roles') + 1]
const env = (s: Service, key: string) => s.environment?.[key]

// ---- Traefik's rules, evaluated against sample requests --------------------------------------

type Rule = (req: { method: string; path: string }) => boolean

/** A parser for the subset of Traefik v3's rule language Sabt uses: Method, Path, PathPrefix, &&, ||, !, (). */
function parseRule(src: string): Rule {
  const tokens = src.match(/\s*(&&|\|\||!|\(|\)|[A-Za-z]+\((?:\s*`[^`]*`\s*,?)*\))/g)
  if (!tokens || tokens.join('').replace(/\s/g, '') !== src.replace(/\s/g, ''))
    throw new Error(`cannot parse rule ${src}`)
  const toks = tokens.map((t) => t.trim())
  let i = 0
  const or = (): Rule => {
    let left = and()
    while (toks[i] === '||') {
      i++
      const l = left
      const r = and()
      left = (q) => l(q) || r(q)
    }
    return left
  }
  const and = (): Rule => {
    let left = unary()
    while (toks[i] === '&&') {
      i++
      const l = left
      const r = unary()
      left = (q) => l(q) && r(q)
    }
    return left
  }
  const unary = (): Rule => {
    const t = toks[i++]
    if (t === '!') {
      const inner = unary()
      return (q) => !inner(q)
    }
    if (t === '(') {
      const inner = or()
      if (toks[i++] !== ')') throw new Error(`unbalanced parentheses in ${src}`)
      return inner
    }
    const m = /^([A-Za-z]+)\((.*)\)$/.exec(t ?? '')
    if (!m) throw new Error(`unexpected ${t} in ${src}`)
    const args = [...m[2]!.matchAll(/`([^`]*)`/g)].map((a) => a[1]!)
    switch (m[1]) {
      case 'Method':
        return (q) => args.includes(q.method)
      case 'Path':
        return (q) => args.includes(q.path)
      case 'PathPrefix':
        return (q) => args.some((p) => q.path.startsWith(p))
      default:
        throw new Error(`matcher ${m[1]} is not understood by this test: teach parseRule`)
    }
  }
  const rule = or()
  if (i !== toks.length) throw new Error(`trailing tokens in ${src}`)
  return rule
}

interface Router {
  name: string
  owner: string
  rule: Rule
  ruleText: string
  priority: number
  service: string
  middlewares: string[]
  entrypoints: string[]
}

function labelsOf(files: ComposeFile[]): Array<[owner: string, key: string, value: string]> {
  const out: Array<[string, string, string]> = []
  for (const f of files)
    for (const [name, s] of Object.entries(f.services))
      for (const [k, v] of Object.entries(s.labels ?? {})) out.push([name, k, String(v)])
  return out
}

const labels = labelsOf([compose])
const routers: Router[] = (() => {
  const byName = new Map<string, Record<string, string> & { owner: string }>()
  for (const [owner, k, v] of labels) {
    const m = /^traefik\.http\.routers\.([^.]+)\.(.+)$/.exec(k)
    if (!m) continue
    const r: Record<string, string> & { owner: string } = byName.get(m[1]!) ?? { owner }
    r[m[2]!] = v
    byName.set(m[1]!, r)
  }
  return [...byName.entries()].map(([name, r]) => ({
    name,
    owner: r.owner,
    ruleText: r.rule!,
    rule: parseRule(r.rule!),
    priority: Number(r.priority ?? r.rule!.length),
    service: r.service!,
    middlewares: (r.middlewares ?? '').split(',').filter(Boolean),
    entrypoints: (r.entrypoints ?? '').split(',').filter(Boolean),
  }))
})()

/** Middleware name → { type, options } from every service's labels. */
const middlewares = (() => {
  const out = new Map<string, { type: string; options: Record<string, string> }>()
  for (const [, k, v] of labels) {
    const m = /^traefik\.http\.middlewares\.([^.]+)\.([^.]+)\.(.+)$/.exec(k)
    if (!m) continue
    const mw = out.get(m[1]!) ?? { type: m[2]!, options: {} }
    if (mw.type !== m[2]) throw new Error(`middleware ${m[1]} has two types`)
    mw.options[m[3]!.toLowerCase()] = composeDefault(v)
    out.set(m[1]!, mw)
  }
  return out
})()

/** Where Traefik sends a request: the matching router with the highest priority. */
function route(method: string, path: string, entrypoint = 'websecure'): Router | undefined {
  return routers
    .filter((r) => r.entrypoints.includes(entrypoint) && r.rule({ method, path }))
    .sort((a, b) => b.priority - a.priority)[0]
}

describe('docker-compose.yml', () => {
  it('follows the Compose Specification (no version key) in both files', () => {
    expect(compose.version).toBeUndefined()
    expect(cluster.version).toBeUndefined()
    expect(replica.version).toBeUndefined()
    expect(Object.keys(services).length).toBeGreaterThan(5)
  })

  it('every service has an image or a build, and a health check (the one-shot migrate job excepted)', () => {
    for (const f of [compose, cluster, replica])
      for (const [name, s] of Object.entries(f.services)) {
        if (f !== compose && services[name]) continue // an override of a base service
        expect(s.image ?? s.build, `${name}: image or build`).toBeTruthy()
        if (name === 'migrate') {
          expect(s.healthcheck?.disable).toBe(true)
          expect(s.restart).toBe('no')
          continue
        }
        expect(
          Array.isArray(s.healthcheck?.test) && s.healthcheck.test.length > 1,
          `${name}: healthcheck`,
        ).toBe(true)
        const hc = s.healthcheck!
        if (hc.interval && hc.timeout)
          expect(durationMs(hc.timeout), `${name}: timeout < interval`).toBeLessThanOrEqual(
            durationMs(hc.interval),
          )
      }
  })

  it('runs every role Sabt has, each from the one image, with its role as the command', () => {
    for (const role of ROLES) {
      const s = services[role]
      expect(s, `a service for the ${role} role`).toBeDefined()
      expect(s!.command).toEqual(['start', '--roles', role])
    }
    expect(services.migrate!.command).toEqual(['migrate'])
    const images = new Set(appServices.map(([, s]) => s.image))
    expect(images.size).toBe(1)
    for (const [name, s] of appServices) {
      expect(s.build, name).toEqual({
        context: '.',
        target: 'runtime',
        args: { NODE_IMAGE: '${NODE_IMAGE:?pin NODE_IMAGE by digest in .env (see .env.example)}' },
      })
      // The image's liveness probe: node's fetch on /healthz (no curl in slim images).
      if (name !== 'migrate') expect(JSON.stringify(s.healthcheck?.test), name).toMatch(/"node".*\/healthz/)
    }
  })

  it('starts app services after migrate has succeeded, and after the broker and database they use are healthy', () => {
    expect(services.migrate!.depends_on?.postgres?.condition).toBe('service_healthy')
    for (const [name, s] of startServices) {
      const role = roleOf(s)
      if (role === 'simulator') continue // a fake third party: needs neither migrations nor queues
      expect(s.depends_on?.migrate?.condition, name).toBe('service_completed_successfully')
      if (env(s, 'AMQP_URL') !== undefined)
        expect(s.depends_on?.rabbitmq?.condition, `${name} uses RabbitMQ`).toBe('service_healthy')
      if (env(s, 'DATABASE_URL') !== undefined)
        expect(s.depends_on?.postgres?.condition, `${name} uses PostgreSQL`).toBe('service_healthy')
    }
    for (const role of ['gateway', 'recorder', 'checker'])
      expect(env(services[role]!, 'AMQP_URL'), role).toBeDefined()
    // The gateway too: it reads the partner keys of batch intake from PostgreSQL (without it,
    // batch intake answered 503 forever in the real compose run).
    for (const role of ['recorder', 'checker', 'status', 'gateway'])
      expect(env(services[role]!, 'DATABASE_URL'), role).toBeDefined()
  })

  it('runs at least two gateways, and the simulator only under the dev profile', () => {
    expect(services.gateway!.deploy?.replicas).toBeGreaterThanOrEqual(2)
    expect(services.simulator!.profiles).toEqual(['dev'])
    for (const [name, s] of Object.entries(services))
      if (name !== 'simulator') expect(s.profiles, `${name} runs without a profile`).toBeUndefined()
  })

  it('publishes no port but Traefik’s', () => {
    const published = Object.entries(services)
      .filter(([, s]) => s.ports?.length)
      .map(([n]) => n)
    expect(published).toEqual(['traefik'])
    expect(Object.values(cluster.services).every((s) => !s.ports)).toBe(true)
  })

  it('keeps the cluster override consistent: three nodes, one cookie, every AMQP user through the balancer', () => {
    const nodes = ['rabbitmq', 'rabbitmq-2', 'rabbitmq-3']
    for (const n of nodes)
      expect(
        String(cluster.services[n]?.environment?.RABBITMQ_ERLANG_COOKIE),
        `${n}: the shared Erlang cookie`,
      ).toMatch(/^\$\{RABBITMQ_ERLANG_COOKIE:\?/)
    const clusterConf = read('deploy/rabbitmq/cluster.conf')
    for (const [i, n] of ['rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3'].entries())
      expect(clusterConf).toContain(`cluster_formation.classic_config.nodes.${i + 1} = rabbit@${n}`)
    expect(services.rabbitmq!.networks).toEqual(['backend'])
    expect(services.rabbitmq!).toMatchObject({ hostname: 'rabbitmq-1' })
    expect(cluster.services['rabbitmq-2']).toMatchObject({ hostname: 'rabbitmq-2' })
    for (const [name, s] of startServices)
      if (env(s, 'AMQP_URL') !== undefined) {
        expect(String(env(cluster.services[name] ?? {}, 'AMQP_URL')), name).toMatch(/@amqp:5672$/)
        expect(cluster.services[name]?.depends_on?.amqp?.condition, name).toBe('service_healthy')
      }
    const haproxy = read('deploy/rabbitmq/haproxy.cfg')
    expect(cluster.services.amqp?.image).toMatch(/^\$\{HAPROXY_IMAGE:\?/)
    for (const n of ['rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3'])
      expect(haproxy).toContain(`server ${n} ${n}:5672 check`)
  })
})

describe('docker-compose.replica.yml', () => {
  it('gives the status role (only) a streaming replica to read, made from the primary with its own login', () => {
    const r = replica.services['postgres-replica']!
    expect(r.image).toBe(services.postgres!.image)
    expect(r.ports).toBeUndefined()
    expect(r.depends_on?.postgres?.condition).toBe('service_healthy')
    expect(r.volumes).toContain('./deploy/postgres/postgresql.conf:/etc/postgresql/postgresql.conf:ro')
    expect(String(env(replica.services.status!, 'DATABASE_READ_URL'))).toMatch(/@postgres-replica:5432\//)
    expect(replica.services.status!.depends_on?.['postgres-replica']?.condition).toBe('service_healthy')
    for (const [name, s] of Object.entries(replica.services))
      if (name !== 'status') expect(env(s, 'DATABASE_READ_URL'), name).toBeUndefined()
    for (const s of [r, replica.services.postgres!])
      expect(String(env(s, 'POSTGRES_REPLICATION_PASSWORD'))).toMatch(/^\$\{POSTGRES_REPLICATION_PASSWORD:\?/)
    expect(replica.services.postgres!.volumes).toContain(
      './deploy/postgres/replication/primary-init.sh:/docker-entrypoint-initdb.d/20-replication.sh:ro',
    )
    for (const f of ['primary-init.sh', 'replica-entrypoint.sh'])
      expect(
        statSync(join(ROOT, 'deploy/postgres/replication', f)).mode & 0o111,
        `${f} is executable`,
      ).not.toBe(0)
  })
})

describe('Traefik', () => {
  it('routes intake POSTs to the gateway and the read side to status', () => {
    const cases: Array<[method: string, path: string, owner: string | undefined]> = [
      ['POST', '/v1/registrations', 'gateway'],
      ['POST', '/v1/registrations/batch', 'gateway'],
      ['GET', '/v1/registrations/019abf0e-0000-7000-8000-000000000000', 'status'],
      ['HEAD', '/v1/registrations/019abf0e-0000-7000-8000-000000000000', 'status'],
      // The admin surface is not on the public entrypoint at all (its own one, below).
      ['GET', '/dashboard', undefined],
      ['POST', '/admin/dead/replay', undefined],
      ['GET', '/docs', undefined],
      ['GET', '/openapi.json', undefined],
      ['GET', '/metrics', undefined],
      // Not routed at all: the health endpoints stay inside, unknown methods go nowhere.
      ['GET', '/healthz', undefined],
      ['GET', '/readyz', undefined],
      ['DELETE', '/v1/registrations/x', undefined],
      ['PUT', '/v1/registrations', undefined],
    ]
    for (const [method, path, owner] of cases)
      expect(route(method, path)?.owner, `${method} ${path}`).toBe(owner)
    expect(route('POST', '/v1/registrations/batch')?.name).not.toBe(route('POST', '/v1/registrations')?.name)
    for (const path of [
      '/dashboard',
      '/dashboard/dead-letters',
      '/admin/dead/replay',
      '/v1/admin/lookup',
      '/docs',
      '/docs/static/index.html',
      '/openapi.json',
      '/metrics',
    ])
      expect(route('GET', path, 'admin')?.owner, `admin ${path}`).toBe('status')
    // Plain HTTP serves nothing: every router is on a TLS entrypoint.
    for (const r of routers) expect(r.entrypoints, r.name).not.toContain('web')
  })

  it('serves TLS on :443 (files or ACME), redirects :80 to it, and sends HSTS on every public answer', () => {
    const eps = traefik.entryPoints as unknown as Record<
      string,
      { address: string; http?: { tls?: unknown; redirections?: { entryPoint?: unknown } } }
    >
    expect(eps.web!.address).toBe(':80')
    expect(eps.web!.http?.redirections?.entryPoint).toMatchObject({
      to: 'websecure',
      scheme: 'https',
      permanent: true,
    })
    expect(eps.websecure!.address).toBe(':443')
    expect(eps.websecure!.http?.tls).toBeDefined()
    expect(eps.admin!.http?.tls).toBeDefined()
    const dynamic = parse(read('deploy/traefik/dynamic.yml')) as {
      tls: { stores: { default: { defaultCertificate: { certFile: string; keyFile: string } } } }
      http: { middlewares: Record<string, { headers?: { stsSeconds?: number } }> }
    }
    expect(dynamic.tls.stores.default.defaultCertificate.certFile).toMatch(/^\/etc\/traefik\/certs\//)
    expect(dynamic.http.middlewares['sabt-hsts']!.headers!.stsSeconds).toBeGreaterThanOrEqual(15_552_000)
    for (const r of routers) expect(r.middlewares, r.name).toContain('sabt-hsts@file')
    expect(services.traefik!.volumes).toContain('./deploy/traefik/dynamic.yml:/etc/traefik/dynamic.yml:ro')
    expect(services.traefik!.volumes!.some((v) => v.endsWith(':/etc/traefik/certs:ro'))).toBe(true)
    // Forwarded headers from clients are never believed at the edge.
    for (const ep of ['websecure', 'admin'])
      expect(
        (eps[ep] as { forwardedHeaders?: { trustedIPs?: string[] } }).forwardedHeaders?.trustedIPs,
        ep,
      ).toEqual([])
    // Never a certificate or key in the repository.
    const certs = readdirSync(join(ROOT, 'deploy/traefik/certs'))
    expect(certs).toEqual(['README.md'])
  })

  it('puts the admin surface on its own entrypoint, published on loopback only by default, behind an allowlist', () => {
    const ports = services.traefik!.ports!.map(composeDefault)
    expect(ports).toContain('80:80')
    expect(ports).toContain('443:443')
    expect(ports).toContain('127.0.0.1:8443:8443')
    const admin = routers.filter((r) => r.entrypoints.includes('admin'))
    expect(admin.length).toBeGreaterThan(0)
    for (const r of admin)
      expect(
        r.middlewares.some((m) => middlewares.get(m)?.type === 'ipallowlist'),
        r.name,
      ).toBe(true)
  })

  it('rate-limits and buffers (with a body limit) every intake route, above the gateway’s own limits', () => {
    const limits: Record<string, number> = {
      '/v1/registrations': Number(composeDefault(env(services.gateway!, 'SABT_BODY_LIMIT'))),
      '/v1/registrations/batch': Number(composeDefault(env(services.gateway!, 'SABT_BATCH_BODY_LIMIT'))),
    }
    expect(limits['/v1/registrations']).toBe(schemaDefault('SABT_BODY_LIMIT'))
    expect(limits['/v1/registrations/batch']).toBe(schemaDefault('SABT_BATCH_BODY_LIMIT'))
    for (const [path, appLimit] of Object.entries(limits)) {
      const r = route('POST', path)!
      // @file middlewares (HSTS) are Traefik's dynamic file, checked with TLS below.
      const mws = r.middlewares
        .filter((m) => !m.endsWith('@file'))
        .map((m) => ({ name: m, ...middlewares.get(m) }))
      for (const m of mws) expect(m.type, `middleware ${m.name} is defined`).toBeDefined()
      const rate = mws.find((m) => m.type === 'ratelimit')
      expect(rate, `${path}: rate limit`).toBeDefined()
      // Public intake: defined but off by default (average 0 — carrier-grade NAT); batch: on.
      if (path === '/v1/registrations') expect(Number(rate!.options!.average)).toBe(0)
      else expect(Number(rate!.options!.average)).toBeGreaterThan(0)
      expect(Number(rate!.options!.burst)).toBeGreaterThanOrEqual(Number(rate!.options!.average))
      const buffering = mws.find((m) => m.type === 'buffering')
      expect(buffering, `${path}: body limit`).toBeDefined()
      // The gateway's JSON 413 (naming the rule) must win over Traefik's plain one at its limit.
      expect(Number(buffering!.options!.maxrequestbodybytes), path).toBeGreaterThanOrEqual(appLimit)
    }
    const status = route('GET', '/v1/registrations/x')!
    expect(status.middlewares.some((m) => middlewares.get(m)?.type === 'ratelimit')).toBe(true)
    const metrics = route('GET', '/metrics', 'admin')!
    expect(metrics.middlewares.some((m) => middlewares.get(m)?.type === 'ipallowlist')).toBe(true)
  })

  it('sends to services that exist, on the port Sabt listens on, with /readyz as the load balancer’s check', () => {
    for (const r of routers) {
      const prefix = `traefik.http.services.${r.service}.loadbalancer.`
      const svc = Object.fromEntries(
        labels
          .filter(([o, k]) => o === r.owner && k.startsWith(prefix))
          .map(([, k, v]) => [k.slice(prefix.length), v]),
      )
      expect(svc['server.port'], r.name).toBe(composeDefault(env(services[r.owner]!, 'PORT')))
      expect(svc['healthcheck.path'], r.name).toBe('/readyz')
      expect(durationMs(svc['healthcheck.timeout']!)).toBeLessThan(durationMs(svc['healthcheck.interval']!))
    }
  })

  it('finds the containers through the socket proxy on the named edge network, and logs every request', () => {
    const docker = traefik.providers.docker
    expect(docker.exposedByDefault).toBe(false)
    expect(docker.endpoint).toMatch(/^tcp:\/\/socket-proxy:/)
    expect(services['socket-proxy']).toBeDefined()
    expect(JSON.stringify(services.traefik!.volumes)).not.toContain('docker.sock')
    expect(compose.networks?.edge?.name).toBe(docker.network)
    for (const owner of new Set(routers.map((r) => r.owner))) {
      expect(services[owner]!.labels!['traefik.docker.network']).toBe(docker.network)
      expect(services[owner]!.networks).toContain('edge')
    }
    expect(traefik.accessLog?.format).toBe('json')
    // Request headers carry the admin token: never in the access log.
    expect(traefik.accessLog?.fields?.headers?.defaultMode).toBe('drop')
    expect(traefik.ping).toBeDefined()
    expect(services.traefik!.volumes).toContain('./deploy/traefik/traefik.yml:/etc/traefik/traefik.yml:ro')
  })
})

describe('environment', () => {
  const envExample = read('.env.example')
  const exampleKeys = new Set([...envExample.matchAll(/^\s*#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!))
  const composeKeys = new Set(Object.values(services).flatMap((s) => Object.keys(s.environment ?? {})))
  const composeText = read('docker-compose.yml')

  it('sets every variable Sabt reads that has no default (in compose or .env.example)', () => {
    const noDefault = Object.entries(EnvSchema.properties as Record<string, { default?: unknown }>)
      .filter(([, p]) => p.default === undefined)
      .map(([k]) => k)
    expect(noDefault.length).toBeGreaterThan(0)
    const missing = noDefault.filter(
      (k) => !composeKeys.has(k) && !exampleKeys.has(k) && !composeText.includes(`\${${k}`),
    )
    expect(missing).toEqual([])
  })

  it('passes Sabt only variables it reads (no typo goes unnoticed)', () => {
    const known = new Set(Object.keys(EnvSchema.properties))
    // config/sabt.yaml reads a few more through ${VAR} (provider URLs).
    for (const m of read('config/sabt.yaml').matchAll(/\$\{([A-Z0-9_]+)/g)) known.add(m[1]!)
    for (const [name, s] of appServices)
      for (const key of Object.keys(s.environment ?? {})) expect(known.has(key), `${name}: ${key}`).toBe(true)
  })

  it('gives each role the secrets it uses and no other (the gateway none), each required', () => {
    const all = ['SABT_ADMIN_TOKEN', 'SABT_DATA_KEYS', 'SABT_INDEX_KEY', 'SABT_CALLBACK_SECRET']
    for (const [name, s] of startServices) {
      expect(env(s, 'NODE_ENV'), name).toBe('production')
      const needs = secretsFor([roleOf(s)!], { SABT_SEAL_AT: 'recorder' })
      for (const key of all)
        if ((needs as string[]).includes(key))
          expect(String(env(s, key)), `${name}: ${key}`).toMatch(new RegExp(`^\\$\\{${key}:\\?`))
        else expect(env(s, key), `${name} is not given ${key}`).toBeUndefined()
    }
    expect(secretsFor(['gateway'], { SABT_SEAL_AT: 'recorder' })).toEqual([])
    for (const key of [
      ...all,
      'POSTGRES_PASSWORD',
      'RABBITMQ_PASSWORD',
      'SABT_DB_GATEWAY_PASSWORD',
      'SABT_DB_RECORDER_PASSWORD',
      'SABT_DB_CHECKER_PASSWORD',
      'SABT_DB_STATUS_PASSWORD',
    ])
      expect(envExample).toMatch(new RegExp(`^${key}=$`, 'm'))
  })

  it('connects each role as its own database role; only migrate as the superuser', () => {
    for (const [name, s] of startServices) {
      const url = env(s, 'DATABASE_URL')
      if (url === undefined) continue
      const role = roleOf(s) as keyof typeof DB_ROLES
      expect(String(url), name).toMatch(
        new RegExp(`^postgres://${DB_ROLES[role]}:\\$\\{SABT_DB_${role.toUpperCase()}_PASSWORD:\\?`),
      )
    }
    expect(String(env(services.gateway!, 'DATABASE_URL'))).toMatch(/^postgres:\/\/sabt_gateway:/)
    expect(String(env(services.migrate!, 'DATABASE_URL'))).toMatch(/^postgres:\/\/\$\{POSTGRES_USER/)
    for (const role of Object.keys(DB_ROLES))
      expect(String(env(services.migrate!, `SABT_DB_${role.toUpperCase()}_PASSWORD`)), role).toMatch(/:\?/)
    expect(String(env(replica.services.status!, 'DATABASE_READ_URL'))).toMatch(/^postgres:\/\/sabt_status:/)
  })

  it('drops every capability and forbids new privileges in every container; images pinned by digest variables', () => {
    for (const file of [compose, cluster, replica])
      for (const [name, s] of Object.entries(file.services) as Array<
        [string, Service & Record<string, unknown>]
      >) {
        if (file !== compose && !s.image && !s.build) continue // an override of a service above
        expect(s.cap_drop, name).toEqual(['ALL'])
        expect(s.security_opt, name).toContain('no-new-privileges:true')
        if (s.build === undefined)
          expect(String(s.image), name).toMatch(/^\$\{[A-Z_]+_IMAGE:\?pin [A-Z_]+ by digest/)
        // Built here: the base image is a required variable too (the Dockerfile's ARG NODE_IMAGE).
        else
          expect(String((s.build as { args?: Record<string, unknown> }).args?.NODE_IMAGE), name).toMatch(
            /^\$\{NODE_IMAGE:\?pin NODE_IMAGE by digest/,
          )
      }
    expect(read('.env.example')).toMatch(/@sha256:<digest>/)
  })

  it('lets Traefik read only the container list, inspect, events and version through the socket proxy', () => {
    const cfg = read('deploy/socket-proxy/haproxy.cfg')
    const allowed = new RegExp(/path,url_dec -m reg (\S+)/.exec(cfg)![1]!)
    for (const p of [
      '/v1.43/containers/json',
      '/v1.43/containers/abc123/json',
      '/v1.43/events',
      '/version',
      '/_ping',
    ])
      expect(allowed.test(p), p).toBe(true)
    for (const p of [
      '/v1.43/containers/abc/archive',
      '/v1.43/containers/abc/export',
      '/v1.43/exec/x/start',
      '/v1.43/images/json',
      '/v1.43/containers/abc/logs',
    ])
      expect(allowed.test(p), p).toBe(false)
    expect(cfg).toMatch(/deny deny_status 403 unless get allowed/)
    expect(services['socket-proxy']!.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock:ro')
  })

  it('gives every process that declares the topology the same queue arguments', () => {
    const mq = startServices.filter(([, s]) => env(s, 'AMQP_URL') !== undefined)
    expect(mq.length).toBeGreaterThanOrEqual(3)
    for (const key of [
      'SABT_MQ_PREFIX',
      'SABT_INTAKE_SHARDS',
      'SABT_INTAKE_MAX_LENGTH',
      'SABT_INTAKE_DELIVERY_LIMIT',
    ])
      expect(new Set(mq.map(([, s]) => env(s, key))).size, key).toBe(1)
  })
})

/** A value that is a placeholder, not a secret: empty, ${VAR} references, <placeholder>. */
function placeholder(value: string): boolean {
  return (
    value
      .replace(/\$\{[^}]*\}/g, '')
      .replace(/<[a-z-]+>/g, '')
      .replace(/["'\s]/g, '') === ''
  )
}

/** Secret-looking literals in one file: long random tokens, secret-named keys with a value, URL passwords. */
function secretFindings(file: string, text: string): string[] {
  const findings: string[] = []
  for (const [n, raw] of text.split('\n').entries()) {
    const where = `${file}:${n + 1}`
    // ${VAR…} references are never secrets (their text can be long); look at the rest.
    const line = raw.replace(/\$\{[^}]*\}/g, '${}')
    // Long random-looking tokens: base64 or hex keys.
    for (const tok of line.match(/[A-Za-z0-9+/_-]{32,}={0,2}/g) ?? []) {
      const classes = [/[a-z]/, /[A-Z]/, /[0-9]/].filter((r) => r.test(tok)).length
      const hex = /^[0-9a-fA-F]{32,}$/.test(tok)
      if (hex || (classes === 3 && (tok.match(/[0-9]/g) ?? []).length >= 3)) findings.push(`${where}: ${tok}`)
    }
    if (line.trimStart().startsWith('#')) continue
    // NAME=value or NAME: value where the name says secret.
    const kv =
      /^\s*(?:-\s*)?"?([A-Za-z0-9_.]*(?:PASS|PASSWORD|SECRET|TOKEN|COOKIE|KEYS?))"?\s*[:=]\s*(.*)$/i.exec(
        line,
      )
    if (kv && !placeholder(kv[2]!.replace(/\s+#.*$/, '')) && !findings.some((f) => f.startsWith(`${where}:`)))
      findings.push(`${where}: ${kv[1]} has a literal value`)
    // Credentials inside URLs.
    for (const m of line.matchAll(/[a-z][a-z0-9+.-]*:\/\/([^/\s:@]+):([^@\s/]+)@/g))
      if (!placeholder(m[2]!)) findings.push(`${where}: password in URL`)
  }
  return findings
}

describe('no secret is committed', () => {
  function files(dir: string): string[] {
    return readdirSync(join(ROOT, dir)).flatMap((f) => {
      const p = posix.join(dir, f)
      return statSync(join(ROOT, p)).isDirectory() ? files(p) : [p]
    })
  }
  const scanned = [
    'docker-compose.yml',
    'docker-compose.cluster.yml',
    'docker-compose.replica.yml',
    '.env.example',
    'Dockerfile',
    ...files('deploy'),
  ]

  it('has no key, password or token literal in compose, .env.example, the Dockerfile or deploy/', () => {
    expect(scanned.length).toBeGreaterThan(6)
    expect(scanned.flatMap((file) => secretFindings(file, read(file)))).toEqual([])
  })

  it('(the scan itself finds planted secrets, and lets references and placeholders be)', () => {
    const planted = [
      `SABT_DATA_KEYS=k1:${newKey()}`,
      `SABT_INDEX_KEY: "${randomBytes(32).toString('hex')}"`,
      'RABBITMQ_DEFAULT_PASS: hunter2',
      '      POSTGRES_PASSWORD=correct-horse',
      'AMQP_URL: amqp://sabt:s3cret@rabbitmq:5672',
      'DATABASE_URL: postgres://sabt:${POSTGRES_PASSWORD:?x}x@postgres/sabt',
    ]
    for (const line of planted) expect(secretFindings('planted', line), line).toHaveLength(1)
    const clean = [
      'SABT_DATA_KEYS=',
      'RABBITMQ_DEFAULT_PASS: ${RABBITMQ_PASSWORD:?set RABBITMQ_PASSWORD in .env}',
      'AMQP_URL: amqp://${RABBITMQ_USER:-sabt}:${RABBITMQ_PASSWORD:?set it in .env}@rabbitmq:5672',
      '#   DATABASE_READ_URL=postgres://sabt:<password>@replica-host:5432/sabt',
      '      - ./deploy/rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/40-cluster.conf:ro',
      'SABT_DATA_KEY_ID: ${SABT_DATA_KEY_ID:-}',
    ]
    for (const line of clean) expect(secretFindings('clean', line), line).toEqual([])
  })

  it('keeps .env out of git and out of the image', () => {
    expect(read('.gitignore').split('\n')).toContain('.env')
    const dockerignore = read('.dockerignore').split('\n')
    expect(dockerignore).toContain('.env')
    expect(dockerignore).toContain('.env.*')
  })
})

describe('timeouts agree', () => {
  const gateway = services.gateway!
  const confirmMs = Number(composeDefault(env(gateway, 'SABT_CONFIRM_TIMEOUT_MS')))
  const fwd = traefik.serversTransport.forwardingTimeouts
  const web = traefik.entryPoints.websecure!.transport!
  const clientMs = durationMs(compose['x-client-timeout']!)

  it('confirm timeout < Traefik’s backend timeout < the documented client timeout', () => {
    expect(confirmMs).toBe(schemaDefault('SABT_CONFIRM_TIMEOUT_MS'))
    expect(confirmMs).toBeLessThan(durationMs(fwd.responseHeaderTimeout))
    expect(durationMs(fwd.responseHeaderTimeout)).toBeLessThan(clientMs)
    // The client waits for the whole exchange: sending its request, then the gateway's answer.
    expect(
      durationMs(web.respondingTimeouts!.readTimeout!) + durationMs(fwd.responseHeaderTimeout),
    ).toBeLessThan(clientMs)
  })

  it('Traefik never cuts an answer the gateway gives in time, nor reuses a connection the gateway is closing', () => {
    const readMs = durationMs(web.respondingTimeouts!.readTimeout!)
    const writeMs = durationMs(web.respondingTimeouts!.writeTimeout!)
    expect(writeMs).toBeGreaterThanOrEqual(readMs + durationMs(fwd.responseHeaderTimeout))
    // The app's keep-alive (src/http/server.ts) must outlast Traefik's idle connections to it.
    const keepAlive = /keepAliveTimeout:\s*([\d_]+)/.exec(read('src/http/server.ts'))
    expect(keepAlive).not.toBeNull()
    expect(durationMs(fwd.idleConnTimeout)).toBeLessThan(Number(keepAlive![1]!.replace(/_/g, '')))
  })

  it('every stop lets the graceful shutdown finish', () => {
    const grace = durationMs(web.lifeCycle!.graceTimeOut!)
    expect(grace).toBeGreaterThanOrEqual(durationMs(fwd.responseHeaderTimeout))
    expect(durationMs(services.traefik!.stop_grace_period!)).toBeGreaterThan(grace)
    for (const [name, s] of startServices) {
      const shutdown = Number(composeDefault(env(s, 'SABT_SHUTDOWN_TIMEOUT_MS')))
      expect(shutdown, name).toBe(schemaDefault('SABT_SHUTDOWN_TIMEOUT_MS'))
      expect(durationMs(s.stop_grace_period!), name).toBeGreaterThan(shutdown)
    }
  })

  it('docs/deployment.md states the same numbers', () => {
    const docs = read('docs/deployment.md')
    const s = (ms: number) => `${ms / 1000} s`
    for (const ms of [confirmMs, durationMs(fwd.responseHeaderTimeout), clientMs])
      expect(docs, s(ms)).toContain(s(ms))
    expect(docs).toMatch(/client timeout/i)
  })
})

describe('RabbitMQ and PostgreSQL settings', () => {
  const confKeys = (text: string) =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('=')[0]!.trim())

  const rabbitDir = '/usr/lib/rabbitmq/lib'
  const schemaFiles = existsSync(rabbitDir)
    ? execFileSync('find', [rabbitDir, '-name', '*.schema'], { encoding: 'utf8' }).split('\n').filter(Boolean)
    : []

  it.skipIf(schemaFiles.length === 0)('uses only keys this RabbitMQ knows (3.13+ keys listed)', () => {
    const patterns = schemaFiles.flatMap((f) =>
      [...readFileSync(f, 'utf8').matchAll(/\{mapping,\s*"([^"]+)"/g)].map(
        (m) => new RegExp(`^${m[1]!.replace(/\./g, '\\.').replace(/\$[a-z_]+/g, '[^.]+')}$`),
      ),
    )
    const known = (k: string) => patterns.some((p) => p.test(k))
    expect(confKeys(read('deploy/rabbitmq/rabbitmq.conf')).filter((k) => !known(k))).toEqual([])
    // Continuous membership reconciliation arrived in RabbitMQ 3.13 (the images run 4.1).
    const newer = /^quorum_queue\.continuous_membership_reconciliation\./
    expect(confKeys(read('deploy/rabbitmq/cluster.conf')).filter((k) => !known(k) && !newer.test(k))).toEqual(
      [],
    )
  })

  const postgres = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql')
        .map((v) => `/usr/lib/postgresql/${v}/bin/postgres`)
        .find((p) => existsSync(p))
    : undefined

  it.skipIf(!postgres)('uses only settings this PostgreSQL knows, and keeps durability on', () => {
    const known = new Set(
      execFileSync(postgres!, ['--describe-config'], { encoding: 'utf8' })
        .split('\n')
        .map((l) => l.split('\t')[0]!.toLowerCase()),
    )
    const conf = read('deploy/postgres/postgresql.conf')
    // Settings of a preloaded extension are namespaced (pg_stat_statements.*).
    expect(confKeys(conf).filter((k) => !known.has(k.toLowerCase()) && !k.includes('.'))).toEqual([])
    for (const k of ['synchronous_commit', 'fsync', 'full_page_writes'])
      expect(conf).toMatch(new RegExp(`^${k} = on$`, 'm'))
  })

  const dockerCompose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0

  it('passes `docker-compose config -q`, alone, with the cluster override and with the dev profile', () => {
    // CI installs Debian's docker-compose (scripts/ci-packages.sh): missing means CI is broken.
    expect(dockerCompose, 'docker-compose is installed (scripts/ci-packages.sh)').toBe(true)
    const secrets = {
      SABT_ADMIN_TOKEN: 'x',
      SABT_DATA_KEYS: 'x',
      SABT_INDEX_KEY: 'x',
      SABT_CALLBACK_SECRET: 'x',
      POSTGRES_PASSWORD: 'x',
      RABBITMQ_PASSWORD: 'x',
      RABBITMQ_ERLANG_COOKIE: 'x',
      POSTGRES_REPLICATION_PASSWORD: 'x',
      SABT_DB_GATEWAY_PASSWORD: 'x',
      SABT_DB_RECORDER_PASSWORD: 'x',
      SABT_DB_CHECKER_PASSWORD: 'x',
      SABT_DB_STATUS_PASSWORD: 'x',
      NODE_IMAGE: 'node@sha256:x',
      POSTGRES_IMAGE: 'postgres@sha256:x',
      RABBITMQ_IMAGE: 'rabbitmq@sha256:x',
      TRAEFIK_IMAGE: 'traefik@sha256:x',
      SOCKET_PROXY_IMAGE: 'haproxy@sha256:x',
      HAPROXY_IMAGE: 'haproxy@sha256:x',
    }
    const run = (args: string[]) =>
      spawnSync('docker-compose', [...args, 'config', '-q'], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...secrets },
      })
    for (const args of [
      ['-f', 'docker-compose.yml'],
      ['-f', 'docker-compose.yml', '-f', 'docker-compose.cluster.yml'],
      ['-f', 'docker-compose.yml', '-f', 'docker-compose.replica.yml'],
      ['-f', 'docker-compose.yml', '-f', 'docker-compose.cluster.yml', '-f', 'docker-compose.replica.yml'],
      ['--profile', 'dev', '-f', 'docker-compose.yml'],
      ['-f', 'docker-compose.yml', '-f', 'docker-compose.seal-at-gateway.yml'],
    ]) {
      const r = run(args)
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0)
    }
    // Without the secrets (and with an empty env file, whatever .env a developer has), compose
    // itself refuses and names one.
    const dir = mkdtempSync(join(tmpdir(), 'sabt-compose-'))
    try {
      const empty = join(dir, 'empty.env')
      writeFileSync(empty, '')
      const r = spawnSync(
        'docker-compose',
        ['--env-file', empty, '-f', 'docker-compose.yml', 'config', '-q'],
        {
          cwd: ROOT,
          encoding: 'utf8',
          env: { PATH: process.env.PATH, HOME: process.env.HOME },
        },
      )
      expect(r.status).not.toBe(0)
      expect(r.stderr).toMatch(/(set|pin) [A-Z_]+ (by digest )?in \.env/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

// ---- the image: the Dockerfile read as instructions ------------------------------------------------

interface Instruction {
  op: string
  args: string
}
interface Stage {
  name: string | null
  from: string
  instructions: Instruction[]
}

function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines: string[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue // comments, also between continued lines
    const line = raw.trimEnd()
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `
      continue
    }
    current += line
    if (current.trim()) lines.push(current.trim().replace(/\s+/g, ' '))
    current = ''
  }
  const args: Record<string, string> = {}
  const stages: Stage[] = []
  for (const line of lines) {
    const [op, ...rest] = line.split(' ')
    const instruction = { op: op!.toUpperCase(), args: rest.join(' ') }
    if (instruction.op === 'FROM') {
      const m = /^(\S+)(?: AS (\S+))?$/i.exec(instruction.args)!
      const from = m[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? '')
      stages.push({ name: m[2] ?? null, from, instructions: [] })
    } else if (stages.length === 0 && instruction.op === 'ARG') {
      const [k, v] = instruction.args.split('=')
      args[k!] = v ?? ''
    } else stages.at(-1)?.instructions.push(instruction)
  }
  return { args, stages }
}

const dockerfile = parseDockerfile(read('Dockerfile'))
const buildStage = dockerfile.stages.find((s) => s.name === 'build')!
const runtimeStage = dockerfile.stages.at(-1)!
const ops = (stage: Stage, op: string) => stage.instructions.filter((i) => i.op === op).map((i) => i.args)
/** Flags of RUN/COPY (--mount=…, --from=…, --chown=…) and the rest. */
function splitFlags(args: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {}
  let rest = args
  for (;;) {
    const m = /^--([a-z-]+)=(\S+)\s+/.exec(rest)
    if (!m) return { flags, rest }
    flags[m[1]!] = m[2]!
    rest = rest.slice(m[0].length)
  }
}

describe('Dockerfile', () => {
  it('builds in a separate stage: npm ci, npm run build, prune to production dependencies', () => {
    expect(buildStage).toBeDefined()
    const runs = ops(buildStage, 'RUN').map((r) => splitFlags(r).rest)
    expect(runs.some((r) => /^npm ci\b/.test(r))).toBe(true)
    expect(runs.some((r) => /^npm run build\b/.test(r))).toBe(true)
    expect(runs.some((r) => /^npm prune --omit=dev\b/.test(r))).toBe(true)
    expect(runtimeStage).not.toBe(buildStage)
  })

  it('runs on Node 24 slim, as a non-root user, under tini, with a node health probe and the role from CMD', () => {
    expect(runtimeStage.from).toMatch(/^node:24(\.[\d.]+)?-.*slim$/)
    expect(buildStage.from).toBe(runtimeStage.from)
    const user = ops(runtimeStage, 'USER')
    expect(user.length).toBe(1)
    expect(user[0]).not.toMatch(/^(root|0)(:|$)/)
    const entrypoint = JSON.parse(ops(runtimeStage, 'ENTRYPOINT')[0]!) as string[]
    expect(entrypoint.slice(0, 2)).toEqual(['/usr/bin/tini', '--'])
    expect(ops(runtimeStage, 'RUN').join('\n')).toMatch(/apt-get install .*\btini\b/)
    const healthcheck = ops(runtimeStage, 'HEALTHCHECK')[0]!
    expect(healthcheck).toMatch(/CMD \["node", "-e", ".*\/healthz/)
    expect(healthcheck).not.toMatch(/curl|wget/)
    expect(JSON.parse(ops(runtimeStage, 'CMD')[0]!)).toEqual(['start', '--roles', 'all'])
  })
})

// ---- the image: built and run -----------------------------------------------------------------------

function dockerignored(text: string): (path: string) => boolean {
  const esc = (s: string) => s.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\?/g, '[^/]')
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!')
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '')
      const body = pattern
        .split('**')
        .map((part) => part.split('*').map(esc).join('[^/]*'))
        .join('.*')
      return { negate, re: new RegExp(`^${body}(/.*)?$`) }
    })
  return (path) => rules.reduce((ignored, r) => (r.re.test(path) ? !r.negate : ignored), false)
}

/** Docker's COPY: a directory's contents go into the destination; several sources need a directory. */
function dockerCopy(fromRoot: string, sources: string[], toRoot: string, dest: string): void {
  const target = join(toRoot, dest)
  const intoDir = sources.length > 1 || dest.endsWith('/')
  for (const src of sources) {
    const from = join(fromRoot, src)
    if (!existsSync(from)) throw new Error(`COPY ${src}: not there (${from})`)
    if (statSync(from).isDirectory()) cpSync(from, target, { recursive: true })
    else {
      const to = intoDir ? join(target, basename(src)) : target
      mkdirSync(dirname(to), { recursive: true })
      cpSync(from, to)
    }
  }
}

function sh(
  command: string,
  cwd: string,
  env: Record<string, string | undefined>,
): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    const p = spawn('sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (out += d))
    p.on('close', (code) => done({ code: code ?? -1, out }))
  })
}

async function freePort(): Promise<number> {
  const s = createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  return port
}

describe('the production image, built as the Dockerfile builds it', () => {
  // Made in beforeAll (not while collecting), so a filtered run leaves no folder behind.
  let work = ''
  let contextDir = ''
  let buildDir = ''
  let appDir = ''
  const databaseUrl = testDatabaseUrl(uniqueName('db'))
  const prefixes: string[] = []
  const children: ChildProcess[] = []
  /** Build and runtime stages both work in /app: a path there maps to our folder. */
  const inStage = (dir: string, p: string) =>
    p.startsWith('/app') ? join(dir, p.slice('/app'.length)) : join(dir, p)
  const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR }
  let built = false

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    const config = loadConfigFile(defaultConfigPath(), {})
    for (const p of prefixes)
      await dropTopology(loadEnv({ SABT_MQ_PREFIX: p, AMQP_URL }), config).catch(() => {})
    await dropDatabase(databaseUrl).catch(() => {})
    if (work) rmSync(work, { recursive: true, force: true })
  })

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'sabt-image-'))
    contextDir = join(work, 'context')
    buildDir = join(work, 'build')
    appDir = join(work, 'app')
    // The build context: the repository's tracked files, less what .dockerignore keeps out.
    const ignored = dockerignored(read('.dockerignore'))
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
      .split('\0')
      .filter((f) => f && !ignored(f) && existsSync(join(ROOT, f)))
    for (const f of tracked) {
      mkdirSync(dirname(join(contextDir, f)), { recursive: true })
      cpSync(join(ROOT, f), join(contextDir, f))
    }
    expect(existsSync(join(contextDir, '.env'))).toBe(false)
    mkdirSync(buildDir)
    mkdirSync(appDir)
  })

  it('builds with the build stage’s own steps and keeps only production dependencies', {
    timeout: 300_000,
  }, async () => {
    const stageEnv: Record<string, string> = {}
    for (const ins of buildStage.instructions) {
      if (ins.op === 'ENV')
        for (const m of ins.args.matchAll(/(\w+)=(\S+)/g)) stageEnv[m[1]!] = m[2]!.replace(/^"|"$/g, '')
      else if (ins.op === 'COPY') {
        const { flags, rest } = splitFlags(ins.args)
        expect(flags.from, 'the build stage copies from the context').toBeUndefined()
        const parts = rest.split(' ')
        dockerCopy(contextDir, parts.slice(0, -1), buildDir, parts.at(-1)!)
      } else if (ins.op === 'RUN') {
        const { rest } = splitFlags(ins.args) // --mount=type=cache: a BuildKit cache, not needed here
        // npm ci from the local cache when it has the packages (it does after the suite's own npm ci).
        const r = await sh(rest, buildDir, { ...baseEnv, npm_config_prefer_offline: 'true', ...stageEnv })
        expect(r.code, `RUN ${rest}\n${r.out}`).toBe(0)
      }
    }
    // The runtime stage takes its files from the build stage and the context, as COPY says.
    for (const args of ops(runtimeStage, 'COPY')) {
      const { flags, rest } = splitFlags(args)
      const parts = rest.split(' ')
      const sources = parts.slice(0, -1)
      if (flags.from === 'build')
        dockerCopy(
          buildDir,
          sources.map((s) => inStage('', s)),
          appDir,
          parts.at(-1)!,
        )
      else dockerCopy(contextDir, sources, appDir, parts.at(-1)!)
    }
    expect(existsSync(join(appDir, 'dist/cli.js'))).toBe(true)
    const pkg = JSON.parse(read('package.json')) as {
      dependencies: Record<string, string>
      devDependencies: Record<string, string>
    }
    for (const dep of Object.keys(pkg.dependencies))
      expect(existsSync(join(appDir, 'node_modules', dep, 'package.json')), dep).toBe(true)
    for (const dev of ['typescript', 'vitest', '@biomejs/biome', 'tsx'])
      expect(existsSync(join(appDir, 'node_modules', dev, 'package.json')), `${dev} is pruned`).toBe(false)
    expect(existsSync(join(appDir, 'src')), 'no TypeScript sources in the image').toBe(false)
    built = true
  })

  it('migrates, then starts every role from dist/cli.js; each answers /healthz and stops cleanly', async () => {
    expect(built, 'the build above succeeded').toBe(true)
    const entrypoint = JSON.parse(ops(runtimeStage, 'ENTRYPOINT')[0]!) as string[]
    const [node, cli] = entrypoint.slice(entrypoint.indexOf('--') + 1)
    expect(node).toBe('node')
    const command = [process.execPath, inStage(appDir, cli!)]
    const runtimeEnv: Record<string, string> = {}
    for (const ins of runtimeStage.instructions.filter((i) => i.op === 'ENV'))
      for (const m of ins.args.matchAll(/(\w+)=(\S+)/g)) runtimeEnv[m[1]!] = m[2]!
    expect(runtimeEnv.NODE_ENV).toBe('production')
    const common = {
      ...baseEnv,
      ...runtimeEnv,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      DATABASE_URL: databaseUrl,
      AMQP_URL,
      SABT_ADMIN_TOKEN: randomBytes(24).toString('base64url'),
      SABT_DATA_KEYS: `k1:${newKey()}`,
      SABT_INDEX_KEY: newKey(),
      SABT_CALLBACK_SECRET: randomBytes(24).toString('base64url'),
    }

    // The compose `migrate` job.
    const migrated = spawnSync(command[0]!, [command[1]!, 'migrate'], {
      cwd: appDir,
      env: common,
      encoding: 'utf8',
    })
    expect(migrated.status, migrated.stderr).toBe(0)
    expect(migrated.stdout).toMatch(/applied: 0001_core/)
    expect((await sql(databaseUrl, 'SELECT slug FROM campaigns')).length).toBeGreaterThan(0)

    await Promise.all(
      ROLES.map(async (role) => {
        const port = await freePort()
        const prefix = uniqueName('mq')
        prefixes.push(prefix)
        const child = spawn(command[0]!, [command[1]!, 'start', '--roles', role], {
          cwd: appDir,
          env: {
            ...common,
            PORT: String(port),
            SABT_MQ_PREFIX: prefix,
            SABT_SIMULATOR_PORT: String(await freePort()),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        children.push(child)
        let out = ''
        child.stdout!.on('data', (d) => (out += d))
        child.stderr!.on('data', (d) => (out += d))
        const exited = once(child, 'exit')
        const health = await waitFor(
          async () => {
            if (child.exitCode !== null) return { status: -1, body: `exited ${child.exitCode}: ${out}` }
            const res = await fetch(`http://127.0.0.1:${port}/healthz`)
            return { status: res.status, body: await res.text() }
          },
          `${role}: /healthz`,
          30_000,
          100,
        )
        expect(health.status, `${role}: ${health.body}`).toBe(200)
        expect(JSON.parse(health.body)).toEqual({ status: 'ok' })
        if (role === 'status') {
          // The dashboard's own files and htmx/uPlot come from what the image carries.
          for (const asset of ['dashboard.js', 'dashboard.css', 'htmx.min.js', 'uPlot.iife.min.js']) {
            const res = await fetch(`http://127.0.0.1:${port}/dashboard/assets/${asset}`)
            await res.arrayBuffer()
            expect(res.status, `status: /dashboard/assets/${asset}`).toBe(200)
          }
        }
        // docker stop: SIGTERM (tini passes it on), then a clean exit well within stop_grace_period.
        child.kill('SIGTERM')
        const [code] = (await Promise.race([
          exited,
          new Promise((r) => setTimeout(() => r([`${role} did not stop in 20 s`]), 20_000)),
        ])) as [number | string]
        expect(code, `${role}: ${out}`).toBe(0)
      }),
    )
  })
})
