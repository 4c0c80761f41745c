import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { Burst, person, registration, type Sent } from './support/load.js'
import { run, until } from './support/run.js'
import { freePort, refusedNote, report, settle, totalRecords, underLoad } from './support/scenario.js'
import { Stack } from './support/stack.js'
import { count, type Row } from './support/verify.js'

/**
 * docker-compose.yml on one Docker host, for real: the image built from the Dockerfile, every
 * service started by `docker compose up`, registrations through the edge, containers killed and
 * the broker restarted under load, and the whole stack taken down and up again. Counted in
 * PostgreSQL.
 */

const e2e = inject('e2e')
const stack = new Stack(
  'sabt-e2e',
  ['docker-compose.yml', 'deploy/e2e/compose.e2e.yml'],
  e2e,
  await freePort(),
  { http: await freePort(), admin: await freePort() },
)
const rows: Row[] = []
const s1 = (ms: number) => `${(ms / 1000).toFixed(1)} s`
/** Every id answered 202 in this file: all must be recorded, once, and verdicted at the end. */
const promised: Sent[] = []

async function gatewayServed(name: string): Promise<number> {
  const text = await stack.docker([
    'exec',
    name,
    'node',
    '-e',
    "fetch('http://127.0.0.1:8080/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))",
  ])
  let n = 0
  for (const m of text.matchAll(/^sabt_http_requests_total\{([^}]*)\} (\d+)/gm))
    if (m[1]!.includes('route="/v1/registrations"') && m[1]!.includes('status="202"')) n += Number(m[2])
  return n
}

describe('single host: docker-compose.yml', () => {
  beforeAll(async () => {
    await stack.down({ volumes: true }).catch(() => {}) // what an interrupted run may have left
    await stack.up()
  })

  afterAll(async () => {
    report('single-host', 'Single host (docker-compose.yml)', rows)
    if (process.env.SABT_E2E_KEEP_STACK !== '1') await stack.down({ volumes: true })
  })

  it('migrate exits 0, every service is healthy, and the edge answers 202', async () => {
    const all = await stack.waitHealthy()
    const migrate = all.filter((c) => c.service === 'migrate')
    expect(migrate.map((c) => [c.status, c.exitCode])).toEqual([['exited', 0]])
    expect(all.filter((c) => c.service === 'gateway').length).toBeGreaterThanOrEqual(2)
    for (const svc of ['edge', 'recorder', 'checker', 'status', 'postgres', 'rabbitmq', 'simulator'])
      expect(
        all.some((c) => c.service === svc),
        svc,
      ).toBe(true)
    // No published port but the edge's three, on loopback (never the machine's 5432 or 5672).
    const ports = await stack.docker([
      'ps',
      '--filter',
      'label=com.docker.compose.project=sabt-e2e',
      '--format',
      '{{.Ports}}',
    ])
    const published = [...ports.matchAll(/([\d.]+):(\d+)->/g)].map((m) => `${m[1]}:${m[2]}`)
    expect(published.sort()).toEqual(
      [stack.port, stack.ports.http, stack.ports.admin].map((p) => `127.0.0.1:${p}`).sort(),
    )
    // The request docs/deployment.md shows, as it shows it (curl), through the edge.
    const answer = await until(
      'a 202 through the edge',
      async () => {
        const r = await run('curl', [
          '-si',
          '--cacert',
          join(stack.tlsDir, 'ca.crt'),
          `${stack.url}/v1/registrations`,
          '-H',
          'content-type: application/json',
          '-d',
          '{ "campaign": "demo", "national_id": "0499370899", "mobile": "09121234567", "first_name": "علی", "last_name": "رضایی", "birth_date": "1990-03-21" }',
        ])
        return /^HTTP\/[\d.]+ 202/.test(r.out) ? r.out : undefined
      },
      60_000,
    )
    const id = /"id":"([0-9a-f-]{36})"/.exec(answer)![1]!
    promised.push({ person: '0499370899', status: 202, id, at: Date.now(), end: Date.now() })
  })

  it('takes 10,000 registrations through the edge at ≥ 200 in flight, spread over the gateways: every 202 recorded', async () => {
    const before = await totalRecords(stack)
    const gateways = (await stack.containers('gateway')).map((c) => c.name)
    const served = await Promise.all(gateways.map(gatewayServed))
    const t0 = Date.now()
    const burst = new Burst(stack.url, { concurrency: 256, total: 10_000, ca: stack.ca })
    await burst.done
    const seconds = (Date.now() - t0) / 1000
    promised.push(...burst.accepted())
    expect(burst.maxInFlight).toBeGreaterThanOrEqual(200)
    expect(burst.sent.length).toBe(10_000)
    const row = await settle(stack, '10,000 registrations through the edge', burst.sent, {
      before,
      recoverMs: null,
      notes: `${burst.maxInFlight} in flight, ${(10_000 / seconds).toFixed(0)} req/s, ${gateways.length} gateways`,
    })
    rows.push(row)
    expect(row.accepted).toBe(10_000) // nothing was broken: every one is a 202
    expect(row.lost).toBe(0)
    expect(row.duplicates).toBe(0)
    // The edge spread them: each gateway answered a good share.
    const after = await Promise.all(gateways.map(gatewayServed))
    for (const [i, g] of gateways.entries())
      expect(after[i]! - served[i]!, g).toBeGreaterThan(10_000 / gateways.length / 3)
  })

  it('serves TLS at the edge with the test certificate, redirects :80, and sends HSTS', async () => {
    // The handshake succeeds only against the test CA made at run time (a verified chain).
    const tls = await run('curl', [
      '-sv',
      '-o',
      '/dev/null',
      '--cacert',
      join(stack.tlsDir, 'ca.crt'),
      `${stack.url}/v1/registrations/x`,
    ])
    expect(tls.err).toMatch(/SSL connection using TLSv1\.[23]/)
    expect(tls.err).toMatch(/subjectAltName: host "127\.0\.0\.1" matched/)
    const untrusted = await run('curl', ['-s', '-o', '/dev/null', `${stack.url}/v1/registrations/x`])
    expect(untrusted.code, 'a client without the CA refuses the certificate').toBe(60)
    const id = promised.at(-1)!.id!
    const status = await fetch(`${stack.url}/v1/registrations/${id}`)
    expect(status.status).toBe(200)
    expect(status.headers.get('strict-transport-security')).toMatch(/max-age=31536000/)
    expect(((await status.json()) as { id: string }).id).toBe(id)
    // Plain HTTP answers nothing but a redirect to https, for every path.
    for (const path of ['/v1/registrations', '/dashboard', '/metrics']) {
      const r = await fetch(`${stack.httpUrl}${path}`, { redirect: 'manual' })
      expect(r.status, path).toBe(308)
      expect(r.headers.get('location'), path).toMatch(/^https:\/\//)
      await r.arrayBuffer()
    }
  })

  it('serves the dashboard, /admin, /docs and /metrics on the admin entrypoint only: unreachable through the public one', async () => {
    const bearer = { authorization: `Bearer ${stack.secrets.SABT_ADMIN_TOKEN}` }
    for (const path of [
      '/dashboard',
      '/dashboard/fragments/counts',
      '/admin/dead',
      '/docs',
      '/openapi.json',
      '/metrics',
      '/healthz',
      '/readyz',
    ]) {
      const r = await fetch(`${stack.url}${path}`, { headers: bearer, redirect: 'manual' })
      expect(r.status, `public ${path}`).toBe(404)
      await r.arrayBuffer()
    }
    const login = await fetch(`${stack.adminUrl}/dashboard`, { redirect: 'manual' })
    expect(login.status).toBe(303)
    expect(login.headers.get('location')).toBe('/dashboard/login')
    const page = await fetch(`${stack.adminUrl}/dashboard`, { headers: bearer })
    expect(page.status).toBe(200)
    expect(await page.text()).toMatch(/<html/i)
    const counts = await fetch(`${stack.adminUrl}/dashboard/fragments/counts`, { headers: bearer })
    expect(counts.status).toBe(200)
    await counts.text()
    const metrics = await fetch(`${stack.adminUrl}/metrics`)
    expect(metrics.status).toBe(200)
    expect(await metrics.text()).toMatch(/^sabt_/m)
    for (const path of ['/healthz', '/readyz'])
      expect((await fetch(`${stack.adminUrl}${path}`)).status, `${path} is not routed`).toBe(404)
  })

  it('gives the gateway container none of the data or index keys (docker inspect), and a database login that cannot read registrations', async () => {
    const gateway = await stack.container('gateway', 1)
    const [inspected] = JSON.parse(await stack.docker(['inspect', gateway])) as Array<{
      Config: { Env: string[] }
      HostConfig: { CapDrop: string[] | null; SecurityOpt: string[] | null; ReadonlyRootfs: boolean }
    }>
    const envText = inspected!.Config.Env.join('\n')
    for (const name of ['SABT_DATA_KEYS', 'SABT_INDEX_KEY', 'SABT_ADMIN_TOKEN', 'SABT_CALLBACK_SECRET'])
      expect(envText, name).not.toContain(`${name}=`)
    for (const name of [
      'SABT_DATA_KEYS',
      'SABT_INDEX_KEY',
      'SABT_ADMIN_TOKEN',
      'SABT_CALLBACK_SECRET',
      'POSTGRES_PASSWORD',
    ])
      expect(envText.includes(stack.secrets[name]!), `the value of ${name}`).toBe(false)
    expect(envText).toMatch(/^DATABASE_URL=postgres:\/\/sabt_gateway:/m)
    expect(inspected!.HostConfig.CapDrop).toEqual(['ALL'])
    expect(inspected!.HostConfig.SecurityOpt).toContain('no-new-privileges:true')
    expect(inspected!.HostConfig.ReadonlyRootfs).toBe(true)
    // The recorder, by contrast, has the keys it seals with — and no admin token.
    const [rec] = JSON.parse(await stack.docker(['inspect', await stack.container('recorder', 1)])) as Array<{
      Config: { Env: string[] }
    }>
    const recEnv = rec!.Config.Env.join('\n')
    expect(recEnv).toContain(`SABT_DATA_KEYS=${stack.secrets.SABT_DATA_KEYS}`)
    expect(recEnv).not.toContain('SABT_ADMIN_TOKEN=')
    // The gateway's own login, over TCP with its password, as the gateway connects.
    const url = `postgres://sabt_gateway:${stack.secrets.SABT_DB_GATEWAY_PASSWORD}@127.0.0.1:5432/sabt`
    const denied = await run(
      'docker',
      [
        'exec',
        `${stack.project}_postgres_1`,
        'psql',
        '-X',
        '-At',
        url,
        '-c',
        'SELECT count(*) FROM registrations',
      ],
      { env: stack.env },
    )
    expect(denied.code).not.toBe(0)
    expect(denied.err).toMatch(/permission denied for table registrations/)
    const keys = await run(
      'docker',
      [
        'exec',
        `${stack.project}_postgres_1`,
        'psql',
        '-X',
        '-At',
        url,
        '-c',
        'SELECT count(*) >= 0 FROM api_keys',
      ],
      { env: stack.env },
    )
    expect(keys.out.trim(), keys.err).toBe('t')
  })

  it('takes a batch with a partner key made by `sabt keys create`, end to end (the gateway reads keys from PostgreSQL as sabt_gateway)', async () => {
    const out = await stack.compose([
      'run',
      '--rm',
      '--no-deps',
      '-T',
      'migrate',
      'keys',
      'create',
      '--name',
      'e2e',
      '--rate',
      '100',
    ])
    const { key } = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { key: string }
    const records = [registration(person()), registration(person())]
    const answer = await until(
      'the gateways to load the new key (every 5 s)',
      async () => {
        const res = await fetch(`${stack.url}/v1/registrations/batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify({ records }),
        })
        const body = (await res.json()) as {
          accepted?: number
          results?: Array<{ status: number; id: string }>
        }
        if (res.status === 503 || res.status === 401) return undefined // not loaded by this gateway yet
        return { status: res.status, body }
      },
      30_000,
    )
    expect(answer.status, JSON.stringify(answer.body)).toBe(202)
    expect(answer.body.accepted).toBe(2)
    for (const r of answer.body.results!) promised.push({ person: '', status: 202, id: r.id, at: 0, end: 0 })
  })

  it('loses nothing when a recorder is killed (docker kill -s KILL) mid-burst', async () => {
    const before = await totalRecords(stack)
    const victim = await stack.container('recorder', 1)
    const { burst, faultAt } = await underLoad(stack, {}, async () => {
      await stack.docker(['kill', '-s', 'KILL', victim])
    })
    // Docker counts `docker kill` as a manual stop (no restart policy): start it again, as an
    // operator would. Recovered: every 202 recorded.
    await stack.docker(['start', victim])
    promised.push(...burst.accepted())
    const row = await settle(stack, '`docker kill -s KILL` a recorder mid-burst', burst.sent, {
      before,
      recoverMs: null,
      notes: `the other recorder went on; ${refusedNote(burst.sent) || 'no request refused'}`,
    })
    row.recoverMs = Date.now() - faultAt // from the kill until every 202 was recorded
    rows.push(row)
    expect(row.lost).toBe(0)
    expect(row.duplicates).toBe(0)
  })

  it('loses nothing when a gateway is killed (docker kill -s KILL) mid-burst', async () => {
    const before = await totalRecords(stack)
    const victim = await stack.container('gateway', 1)
    const { burst, faultAt } = await underLoad(stack, {}, async () => {
      await stack.docker(['kill', '-s', 'KILL', victim])
    })
    promised.push(...burst.accepted())
    const row = await settle(stack, '`docker kill -s KILL` a gateway mid-burst', burst.sent, {
      before,
      recoverMs: burst.refusedFor(faultAt),
      notes: `the edge's /readyz check took it out; ${refusedNote(burst.sent) || 'no request refused'}`,
    })
    rows.push(row)
    await stack.docker(['start', victim])
    expect(row.lost).toBe(0)
    expect(row.duplicates).toBe(0)
    await stack.waitHealthy()
  })

  it('loses nothing when RabbitMQ is restarted (docker restart) mid-burst', async () => {
    const before = await totalRecords(stack)
    const broker = await stack.container('rabbitmq')
    let restartedAt = 0
    const { burst, faultAt } = await underLoad(stack, {}, async () => {
      await stack.docker(['restart', broker])
      restartedAt = Date.now()
    })
    promised.push(...burst.accepted())
    // When each gateway had its broker connection back (its own log).
    const reconnected = [
      ...(await stack.logs('gateway', 200)).matchAll(/"time":"([^"]+)"[^\n]*"event":"mq\.connected"/g),
    ]
      .map((m) => Date.parse(m[1]!))
      .filter((t) => t > faultAt)
    const back = reconnected.length
      ? `gateways reconnected ${((Math.max(...reconnected) - faultAt) / 1000).toFixed(1)} s after the restart began; `
      : ''
    const row = await settle(stack, '`docker restart` RabbitMQ mid-burst', burst.sent, {
      before,
      recoverMs: burst.refusedFor(faultAt),
      notes: `docker restart returned after ${((restartedAt - faultAt) / 1000).toFixed(1)} s; ${back}${refusedNote(burst.sent)}`,
    })
    rows.push(row)
    expect(row.lost).toBe(0)
    expect(row.duplicates).toBe(0)
    await stack.waitHealthy()
  })

  it('keeps every record across `docker compose down` and `up` (volumes), and verdicts every 202', async () => {
    const kept = await count(stack, promised)
    expect(kept.lost).toBe(0)
    const tDown = Date.now()
    await stack.down({ volumes: false })
    const t0 = Date.now()
    await stack.up()
    const tUp = Date.now()
    await stack.waitHealthy()
    const tHealthy = Date.now()
    const again = await until(
      'a 202 through the edge after up',
      async () => {
        const res = await fetch(`${stack.url}/v1/registrations`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(registration(person())),
        })
        const body = (await res.json()) as { id?: string }
        return res.status === 202 ? body.id : undefined
      },
      60_000,
    )
    const upMs = Date.now() - t0
    promised.push({ person: '', status: 202, id: again, at: 0, end: 0 })
    const after = await count(stack, promised)
    rows.push({
      scenario: '`docker compose down`, then `up`',
      sent: promised.length,
      accepted: promised.length,
      recorded: after.found + after.twice,
      lost: after.lost,
      duplicates: after.twice + after.dupRows + after.multi,
      recoverMs: upMs,
      notes: `every 202 of this file; ${kept.total} records before down, ${after.total - 1} after up; down ${s1(t0 - tDown)}, up ${s1(tUp - t0)}, healthy ${s1(tHealthy - tUp)} after`,
    })
    expect(after.lost).toBe(0)
    expect(after.total - 1).toBe(kept.total)
    // Every 202 gets its verdict (the checkers call the simulator at each check's rate limit).
    const verdicted = await until(
      'every 202 verdicted',
      async () => {
        const c = await count(stack, promised)
        return c.verdicted === c.found ? c : undefined
      },
      400_000,
      2000,
    )
    expect(verdicted.verdicted).toBe(promised.length)
    console.log(
      `compose down/up: every 202 verdicted ${s1(Date.now() - tHealthy)} after the stack was healthy`,
    )
    // The look an operator takes (docs/deployment.md), as it is written there.
    const byStatus = await stack.exec(
      'postgres',
      ['psql', '-U', 'sabt', '-d', 'sabt', '-c', 'SELECT status, count(*) FROM registrations GROUP BY 1'],
      { viaCompose: true },
    )
    expect(byStatus).toMatch(/accepted/)
  })
})
