import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfigFile } from '../src/config/campaigns.js'
import { resolveSecrets } from '../src/config/secrets.js'
import { createLogger } from '../src/observability/logger.js'
import { openField } from '../src/privacy/personal-fields.js'
import { Sealer } from '../src/privacy/sealing.js'
import { startSabt } from '../src/runtime/start.js'
import {
  captureLogger,
  registration,
  sql,
  startTestSabt,
  type TestSabt,
  testEnv,
  waitFor,
} from './support/harness.js'

/** A provider no code in Sabt knows: its shape lives only in the test's configuration file. */
const REGISTRY_YAML = (providerUrl: string, callbackUrl: string) => `
retry_tiers: [200ms, 500ms]
providers:
  registry:
    headers: { x-client: sabt-test }
    auth: { type: header, name: x-api-key, value: '\${REGISTRY_API_KEY}' }
    fields: [national_id, last_name, birth_date]
    body: '{"person": {"nid": national_id, "surname": last_name}, "dob": birth_date}'
    answer:
      outcome: 'result.status = "OK" ? "passed" : result.status = "REJECT" ? "failed"'
      reason: result.code
      text: result.message
    samples:
      - { answer: { result: { status: OK } }, outcome: passed }
      - { answer: { result: { status: REJECT, code: DECEASED } }, outcome: failed, reason: deceased }
      - { answer: { result: { status: PENDING } }, outcome: unreadable }
checks:
  registry: { provider: registry, url: '${providerUrl}', timeout_ms: 1000, concurrency: 4, rate_per_second: 500 }
campaigns:
  demo: { title: Demo, checks: [registry], callback_url: '${callbackUrl}' }
`

/**
 * A provider that needs the national id and nothing else. One attempt: an error (a field that
 * cannot be opened) is a `failed` record at once, not a wait through the retry tiers.
 */
const NID_ONLY_YAML = (providerUrl: string) => `
retry_tiers: [200ms]
providers:
  nid_only:
    fields: [national_id]
    body: '{"nid": national_id}'
    answer:
      outcome: 'ok = true ? "passed" : ok = false ? "failed"'
    samples:
      - { answer: { ok: true }, outcome: passed }
checks:
  nid_only: { provider: nid_only, url: '${providerUrl}', timeout_ms: 1000, max_attempts: 1 }
campaigns:
  demo: { title: Demo, checks: [nid_only] }
`

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let b = ''
    req.on('data', (c) => (b += c))
    req.on('end', () => resolve(b))
  })
}

describe('declarative providers', () => {
  const cleanups: (() => Promise<void>)[] = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  it('calls a provider defined only in a config file with exactly the fields it names, maps its answers to outcome and reason, and shows the reason in the status API and the callback — never in the logs', async () => {
    const asked: { path: string; body: Record<string, unknown>; headers: IncomingMessage['headers'] }[] = []
    const REJECT_TEXT = 'Registry says: person deceased on 1400/01/01'
    const provider = createServer(async (req, res) => {
      const body = JSON.parse(await readBody(req)) as { person: { surname: string } }
      asked.push({ path: req.url ?? '', body, headers: req.headers })
      const reject = body.person.surname === 'Reject'
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(
          JSON.stringify(
            reject
              ? { result: { status: 'REJECT', code: 'DECEASED', message: REJECT_TEXT } }
              : { result: { status: 'OK' } },
          ),
        )
    })
    const callbacks: Record<string, unknown>[] = []
    const receiver = createServer(async (req, res) => {
      callbacks.push(JSON.parse(await readBody(req)) as Record<string, unknown>)
      res.writeHead(204).end()
    })
    const providerUrl = await listen(provider)
    const callbackUrl = await listen(receiver)
    cleanups.push(async () => {
      provider.close()
      receiver.close()
    })
    const dir = mkdtempSync(join(tmpdir(), 'sabt-providers-'))
    const file = join(dir, 'sabt.yaml')
    writeFileSync(file, REGISTRY_YAML(`${providerUrl}/v1/verify`, `${callbackUrl}/verdicts`))
    const config = loadConfigFile(file, { REGISTRY_API_KEY: 'key-from-the-environment' })
    const { log, lines } = captureLogger('debug')
    const sabt: TestSabt = await startTestSabt({
      roles: ['gateway', 'recorder', 'checker', 'status'],
      env: testEnv({ SABT_CALLBACK_SECRET: 'test-callback-secret-0123456789' }),
      config,
      log,
    })
    cleanups.push(() => sabt.cleanup())

    const ok = registration({ last_name: 'Ahmadi' }) as Record<string, string>
    const bad = registration({ last_name: 'Reject' }) as Record<string, string>
    const ids: string[] = []
    for (const r of [ok, bad]) {
      const res = await sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: r })
      expect(res.statusCode).toBe(202)
      ids.push(res.json<{ id: string }>().id)
    }
    const statusOf = async (id: string) =>
      (await sabt.app.inject({ method: 'GET', url: `/v1/registrations/${id}` })).json<{
        status: string
        checks: { check: string; outcome: string; reason?: { code: string; text: string | null } }[]
      }>()
    await waitFor(
      async () =>
        (await statusOf(ids[0]!)).status === 'accepted' && (await statusOf(ids[1]!)).status === 'rejected',
      'the verdicts',
    )

    // Exactly the fields named, in the shape the definition builds: no mobile, no first name.
    expect(asked).toHaveLength(2)
    for (const [i, r] of [ok, bad].entries()) {
      // The two are asked concurrently, in either order.
      const call = asked.find((a) => (a.body.person as { nid: string }).nid === r.national_id)!
      expect(call.path).toBe('/v1/verify')
      expect(call.body).toEqual({
        person: { nid: r.national_id, surname: r.last_name },
        dob: r.birth_date,
      })
      expect(call.headers['idempotency-key']).toBe(ids[i])
      // The definition's static headers and its key, read from the environment.
      expect(call.headers['x-client']).toBe('sabt-test')
      expect(call.headers['x-api-key']).toBe('key-from-the-environment')
    }

    const accepted = await statusOf(ids[0]!)
    expect(accepted.checks).toEqual([{ check: 'registry', outcome: 'passed' }])
    const rejected = await statusOf(ids[1]!)
    expect(rejected.checks).toEqual([
      { check: 'registry', outcome: 'failed', reason: { code: 'deceased', text: REJECT_TEXT } },
    ])

    await waitFor(() => callbacks.length === 2, 'both callbacks')
    const cb = callbacks.find((c) => c.id === ids[1])!
    expect(cb).toMatchObject({
      status: 'rejected',
      reasons: [{ check: 'registry', code: 'deceased', text: REJECT_TEXT }],
    })
    expect(callbacks.find((c) => c.id === ids[0])).toMatchObject({ status: 'accepted', reasons: [] })

    // The code is counted; the provider's words are personal data: never in a log line.
    const metrics = await sabt.metrics.registry.getSingleMetricAsString('sabt_check_rejections_total')
    expect(metrics).toContain('campaign="demo",check="registry",reason="deceased"} 1')
    expect(lines.some((l) => l.includes('"reason":"deceased"'))).toBe(true)
    expect(lines.filter((l) => l.includes('deceased on'))).toEqual([])
  })

  it('opens only the sealed fields a provider names: a record whose mobile cannot be opened still passes a check that needs only the national id', async () => {
    const asked: Record<string, unknown>[] = []
    const provider = createServer(async (req, res) => {
      asked.push(JSON.parse(await readBody(req)) as Record<string, unknown>)
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true }))
    })
    const providerUrl = await listen(provider)
    cleanups.push(async () => {
      provider.close()
    })
    const dir = mkdtempSync(join(tmpdir(), 'sabt-providers-'))
    const file = join(dir, 'sabt.yaml')
    writeFileSync(file, NID_ONLY_YAML(`${providerUrl}/v1/verify`))
    const config = loadConfigFile(file, {})
    // No checker yet: the record is tampered with before any check can read it.
    const sabt = await startTestSabt({ roles: ['gateway', 'recorder'], config })
    cleanups.push(() => sabt.cleanup())

    const r = registration() as Record<string, string>
    const res = await sabt.app.inject({ method: 'POST', url: '/v1/registrations', payload: r })
    expect(res.statusCode).toBe(202)
    const id = res.json<{ id: string }>().id
    const url = sabt.env.DATABASE_URL
    await waitFor(
      async () => (await sql(url, 'SELECT 1 FROM registrations WHERE id = $1', [id])).length === 1,
      'the record',
    )

    // The sealed mobile becomes bytes no key opens; the national id is left as it was sealed.
    await sql(url, 'UPDATE registrations SET mobile_sealed = $2 WHERE id = $1', [id, randomBytes(64)])
    const [row] = await sql<{ mobile_sealed: Buffer; key_id: string }>(
      url,
      'SELECT mobile_sealed, key_id FROM registrations WHERE id = $1',
      [id],
    )
    const sealer = new Sealer(resolveSecrets(sabt.env).dataKeys)
    // Opening it is what a checker that opened every field would do, and it throws.
    expect(() => openField(sealer, id, 'mobile', row!.mobile_sealed, row!.key_id)).toThrow()

    const checker = await startSabt({
      roles: ['checker'],
      env: sabt.env,
      config,
      log: createLogger({ level: 'error' }),
      migrate: false,
      listen: false,
    })
    cleanups.push(() => checker.stop())

    const status = await waitFor(async () => {
      const [s] = await sql<{ status: string }>(url, 'SELECT status FROM registrations WHERE id = $1', [id])
      return s && ['accepted', 'rejected', 'failed'].includes(s.status) ? s.status : null
    }, 'the verdict')
    expect(status).toBe('accepted')
    expect(asked).toEqual([{ nid: r.national_id }])
    const outcomes = await sql(
      url,
      'SELECT check_name, outcome FROM check_results WHERE registration_id = $1',
      [id],
    )
    expect(outcomes).toEqual([{ check_name: 'nid_only', outcome: 'passed' }])
  })
})
