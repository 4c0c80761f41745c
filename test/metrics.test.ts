import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../src/observability/logger.js'
import { buildSimulator, type Simulator } from '../src/roles/simulator/server.js'
import { type Role, type Running, startSabt } from '../src/runtime/start.js'
import {
  registration,
  startTestSabt,
  type TestSabt,
  testConfig,
  testEnv,
  waitFor,
} from './support/harness.js'

type Scrape = MetricFamily[] & { text: string }

/** Parses a role's /metrics with a Prometheus text-format parser (it throws on malformed text). */
async function scrape(r: Running): Promise<Scrape> {
  const res = await r.app.inject({ method: 'GET', url: '/metrics' })
  expect(res.statusCode).toBe(200)
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
  const families = parsePrometheusTextFormat(res.body)
  // Nothing silently dropped: one parsed family per declared one, each with its samples.
  expect(families.length).toBe(res.body.split('\n').filter((l) => l.startsWith('# TYPE ')).length)
  // (This parser folds a histogram's label sets into one: labelled histograms are read from the
  // text below, see `observations`; every other family must keep all its samples.)
  for (const f of families) {
    if (f.type === 'HISTOGRAM') continue
    const lines = res.body.split('\n').filter((l) => l.split(/[{ ]/)[0] === f.name)
    expect({ name: f.name, samples: f.metrics.length }).toEqual({ name: f.name, samples: lines.length })
  }
  return Object.assign(families, { text: res.body })
}

function family(fs: MetricFamily[], name: string): MetricFamily {
  const f = fs.find((x) => x.name === name)
  if (!f) throw new Error(`no metric ${name}`)
  return f
}

/** Sum of a counter's or gauge's samples whose labels include `labels`. */
function value(fs: MetricFamily[], name: string, labels: Record<string, string> = {}): number {
  return family(fs, name)
    .metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((a, m) => a + Number(m.value), 0)
}

/** Sum of a histogram's observation counts (its `_count` samples) whose labels include `labels`. */
function observations(fs: Scrape, name: string, labels: Record<string, string> = {}): number {
  expect(family(fs, name).type).toBe('HISTOGRAM')
  let total = 0
  for (const line of fs.text.split('\n')) {
    const m = /^([a-z_0-9]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== `${name}_count`) continue
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    )
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3])
  }
  return total
}

describe('Prometheus /metrics on every role', () => {
  const env = testEnv()
  let sim: Simulator
  let status: TestSabt
  const roles: Partial<Record<Role, Running>> = {}

  beforeAll(async () => {
    sim = await buildSimulator({ log: createLogger({ level: 'silent' }), adminToken: env.SABT_ADMIN_TOKEN! })
    const simUrl = await sim.listen({ host: '127.0.0.1', port: 0 })
    const config = testConfig({
      retry_tiers: ['200ms', '1s'],
      checks: { identity: { provider: 'identity', url: `${simUrl}/identity`, rate_per_second: 500 } },
      campaigns: { demo: { title: 'Demo', checks: ['identity'] } },
    })
    // One runtime per role, as in production (the status one owns the test's database and queues).
    status = await startTestSabt({ roles: ['status'], env, config })
    roles.status = status
    for (const role of ['gateway', 'recorder', 'checker'] as const) {
      const r = await startSabt({
        roles: [role],
        env,
        config,
        log: createLogger({ level: env.LOG_LEVEL }),
        listen: false,
      })
      await r.mq!.waitForConnect()
      roles[role] = r
    }
  })
  afterAll(async () => {
    for (const role of ['gateway', 'recorder', 'checker'] as const) await roles[role]?.stop()
    await status?.cleanup()
    await sim?.close()
  })

  it('parses as Prometheus text on every role, with conventional names, and the counters move with traffic', async () => {
    const before = {
      gateway: await scrape(roles.gateway!),
      recorder: await scrape(roles.recorder!),
      checker: await scrape(roles.checker!),
      status: await scrape(roles.status!),
    }
    for (const fs of Object.values(before))
      for (const f of fs) {
        expect(f.name).toMatch(/^sabt_[a-z0-9_]+$/)
        expect(f.help.length).toBeGreaterThan(0)
        if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/)
        if (/duration|latency|flush_seconds/.test(f.name)) expect(f.name).toMatch(/_seconds$/)
      }
    // What the issue lists, by name (families are declared on every role; samples appear with use).
    for (const name of [
      'sabt_http_requests_total',
      'sabt_http_request_duration_seconds',
      'sabt_publish_confirms_total',
      'sabt_recorder_batch_size',
      'sabt_recorder_flush_seconds',
      'sabt_recorder_rows_written_total',
      'sabt_checks_total',
      'sabt_check_attempts_total',
      'sabt_provider_latency_seconds',
      'sabt_check_retries_total',
      'sabt_dead_letters_total',
      'sabt_circuit_state',
      'sabt_queue_depth',
    ])
      expect(before.checker.map((f) => f.name)).toContain(name)

    const n = 25
    for (let i = 0; i < n; i++) {
      const res = await roles.gateway!.app.inject({
        method: 'POST',
        url: '/v1/registrations',
        payload: registration(),
      })
      expect(res.statusCode).toBe(202)
    }
    const bad = await roles.gateway!.app.inject({
      method: 'POST',
      url: '/v1/registrations',
      payload: registration({ national_id: '0499370898' }),
    })
    expect(bad.statusCode).toBe(422)
    const checker = await waitFor(async () => {
      const fs = await scrape(roles.checker!)
      return value(fs, 'sabt_checks_total', { check: 'identity' }) === n && fs
    }, 'every check finished')

    const gateway = await scrape(roles.gateway!)
    const route = { route: '/v1/registrations', method: 'POST' }
    expect(value(gateway, 'sabt_http_requests_total', { ...route, status: '202' })).toBe(n)
    expect(value(gateway, 'sabt_http_requests_total', { ...route, status: '422' })).toBe(1)
    expect(observations(gateway, 'sabt_http_request_duration_seconds', { ...route, status: '202' })).toBe(n)
    expect(value(gateway, 'sabt_intake_accepted_total')).toBe(n)
    expect(value(gateway, 'sabt_intake_rejected_total', { code: 'SABT_VALIDATION' })).toBe(1)
    expect(value(gateway, 'sabt_publish_confirms_total', { publisher: 'intake', result: 'ack' })).toBe(n)

    const recorder = await scrape(roles.recorder!)
    expect(value(recorder, 'sabt_recorder_rows_written_total', { kind: 'registration' })).toBe(n)
    expect(observations(recorder, 'sabt_recorder_batch_size')).toBeGreaterThan(0)
    expect(observations(recorder, 'sabt_recorder_flush_seconds')).toBe(
      observations(recorder, 'sabt_recorder_batch_size'),
    )
    // Check messages carry many registrations each: at least one confirmed, at most one per registration.
    const checkPublishes = value(recorder, 'sabt_publish_confirms_total', {
      publisher: 'checks',
      result: 'ack',
    })
    expect(checkPublishes).toBeGreaterThan(0)
    expect(checkPublishes).toBeLessThanOrEqual(n)

    expect(value(checker, 'sabt_check_attempts_total', { check: 'identity' })).toBeGreaterThanOrEqual(n)
    expect(observations(checker, 'sabt_provider_latency_seconds', { check: 'identity' })).toBe(n)
    expect(value(checker, 'sabt_circuit_state', { check: 'identity' })).toBe(0)
    expect(value(checker, 'sabt_provider_rate_limit_per_second', { check: 'identity' })).toBe(500)

    // The status role samples every queue's depth once a second.
    const st = await waitFor(async () => {
      const fs = await scrape(roles.status!)
      return family(fs, 'sabt_queue_depth').metrics.length === 8 && fs
    }, 'queue depths sampled')
    const queues = family(st, 'sabt_queue_depth').metrics.map((m) => m.labels!.queue)
    expect(queues).toContain(`${env.SABT_MQ_PREFIX}.intake`)
    expect(queues).toContain(`${env.SABT_MQ_PREFIX}.check.identity`)
    expect(queues).toContain(`${env.SABT_MQ_PREFIX}.dead`)
    expect(queues).toContain(`${env.SABT_MQ_PREFIX}.dead.inbox`)
    // Sampled once a second, and the first samples may predate the checker's consumer: the gauge
    // must come to say one consumer (a slow machine's stale sample failed a plain read in CI).
    await waitFor(
      async () =>
        value(await scrape(roles.status!), 'sabt_queue_consumers', {
          queue: `${env.SABT_MQ_PREFIX}.check.identity`,
        }) === 1,
      'the check queue sampled with its one consumer',
    )
    await waitFor(
      async () =>
        value(await scrape(roles.status!), 'sabt_stats_snapshots_total', { direction: 'received' }) > 0,
      'snapshots received by the status role',
    )
    for (const role of ['gateway', 'recorder', 'checker'] as const)
      await waitFor(
        async () =>
          value(await scrape(roles[role]!), 'sabt_stats_snapshots_total', { direction: 'sent' }) > 0,
        `snapshots sent by the ${role}`,
      )
  })
})
