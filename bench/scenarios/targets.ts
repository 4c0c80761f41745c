import { cpus } from 'node:os'
import type { ScenarioResult } from '../lib/context.js'

/** The targets next to what this run measured. */
export function targetsTable(results: ScenarioResult[]): string {
  const h = (name: string, key: string): number | undefined =>
    results.find((r) => r.name === name)?.headline?.[key]
  const rows: string[] = []
  const row = (
    target: string,
    measured: number | undefined,
    fmtv: (x: number) => string,
    ok: (x: number) => boolean,
    bound?: string,
  ) =>
    rows.push(
      `| ${target} | ${measured === undefined || !Number.isFinite(measured) ? '—' : fmtv(measured)} | ${measured === undefined || !Number.isFinite(measured) ? 'not measured' : ok(measured) ? 'met' : '**not met**'} | ${bound ?? ''} |`,
    )
  const known = (...xs: (number | undefined)[]): boolean =>
    xs.every((x) => x !== undefined && Number.isFinite(x))
  const n = (x: number) => Math.round(x).toLocaleString('en-US')
  const seedIngest = h('seed', 'ingest_rps')
  const seedDrain = h('seed', 'drain_rps')
  const seedChecks = h('seed', 'checks_per_s')
  const gw = h('ingest', 'gateway_max_rps')
  const cores = cpus().length
  // The bound column: what this run's own floors and costs allow any build of the same shape.
  const fastify = h('ingest', 'fastify_max_rps')
  row(
    'ingest ≥ 15× the seed',
    gw !== undefined && seedIngest ? gw / seedIngest : undefined,
    (x) => `${x.toFixed(1)}×`,
    (x) => x >= 15,
    known(fastify, seedIngest)
      ? `the bare Fastify route alone: ${(fastify! / seedIngest!).toFixed(1)}× the seed`
      : undefined,
  )
  const open80 = h('ingest', 'open80_rps')
  const open80Us = h('ingest', 'open80_gateway_us')
  row(
    'ingest p99 ≤ 50 ms at 80 % of max (open loop)',
    h('ingest', 'p99_at_80pct_ms'),
    (x) => `${x.toFixed(1)} ms`,
    (x) => x <= 50,
    known(open80, open80Us)
      ? `80 % is ${n(open80!)} req/s × ${n(open80Us!)} µs per request there = ${((open80! * open80Us!) / 1e6).toFixed(2)} cores asked of one gateway process`
      : undefined,
  )
  const r256 = h('ingest', 'cpu_ratio_closed256')
  const rOpen = h('ingest', 'cpu_ratio_open50')
  row(
    'gateway CPU per 202 ≤ 1.3× bare Fastify (64 connections)',
    h('ingest', 'cpu_ratio_closed64'),
    (x) => `${x.toFixed(2)}×`,
    (x) => x <= 1.3,
    known(r256, rOpen)
      ? `${r256!.toFixed(2)}× at 256 connections, ${rOpen!.toFixed(2)}× at one open-loop rate`
      : undefined,
  )
  const machineUs = h('deployed', 'machine_us_per_registration')
  const nodeHttp = h('deployed', 'node_http_rps')
  row(
    'gateway + recorder (as deployed) ≥ 25 % of a bare node:http server',
    h('deployed', 'ratio_to_node_http'),
    (x) => `${Math.round(x * 100)} %`,
    (x) => x >= 0.25,
    known(machineUs, nodeHttp)
      ? `≤ ${Math.round(((cores * 1e6) / machineUs! / nodeHttp!) * 100)} % with all ${cores} cores busy at this run's ${n(machineUs!)} µs per registration (every process)`
      : undefined,
  )
  row(
    'RabbitMQ CPU per accepted registration (as deployed)',
    h('deployed', 'rabbitmq_us_per_registration'),
    (x) => `${x.toFixed(1)} µs`,
    () => true,
  )
  row('202s missing from the intake queue = 0', h('ingest', 'missing_from_queue'), n, (x) => x === 0)
  const drain = h('drain', 'recorded_per_s')
  row(
    'drain ≥ 10× the seed',
    drain !== undefined && seedDrain ? drain / seedDrain : undefined,
    (x) => `${x.toFixed(1)}×`,
    (x) => x >= 10,
  )
  row(
    'drain ≥ 60 % of a bare unnest INSERT',
    h('drain', 'ratio_to_bare'),
    (x) => `${Math.round(x * 100)} %`,
    (x) => x >= 0.6,
  )
  const surge = h('surge', 'sustained_rps')
  const surgeBusy = h('surge', 'machine_busy_pct')
  const surgeHeld = h('surge', 'held_rps')
  row(
    'sustained surge ≥ 10,000 req/s, backlog not growing',
    surge,
    n,
    (x) => x >= 10000,
    known(surgeHeld, surgeBusy) && surgeHeld! > 0
      ? `≈ ${n((surgeHeld! * 100) / surgeBusy!)} req/s with all ${cores} cores busy at the cost of the holds at ${n(surgeHeld!)} req/s (${Math.round(surgeBusy!)} % busy)`
      : undefined,
  )
  const checks = h('checks', 'checks_per_s_20ms') ?? h('checks', 'checks_per_s')
  row(
    'checks ≥ 10× the seed (20 ms provider)',
    checks !== undefined && seedChecks ? checks / seedChecks : undefined,
    (x) => `${x.toFixed(1)}×`,
    (x) => x >= 10,
  )
  row(
    "≥ 90 % of the providers' combined rate limit used",
    h('checks', 'quota_used'),
    (x) => `${Math.round(x * 100)} %`,
    (x) => x >= 0.9,
  )
  const loss = ['surge', 'drain', 'e2e'].map((s) => h(s, 'lost')).filter((x) => x !== undefined) as number[]
  const dups = ['surge', 'drain', 'e2e']
    .map((s) => h(s, 'duplicates'))
    .filter((x) => x !== undefined) as number[]
  row(
    "loss = 0 (202'd ids missing from PostgreSQL)",
    loss.length ? loss.reduce((a, b) => a + b, 0) : undefined,
    n,
    (x) => x === 0,
  )
  row('duplicates = 0', dups.length ? dups.reduce((a, b) => a + b, 0) : undefined, n, (x) => x === 0)
  row(
    'draw of 1,000,000 accepted registrations < 60 s (issue 13)',
    h('draw', 'n') === 1_000_000 ? h('draw', 'draw_s') : undefined,
    (x) => `${x.toFixed(1)} s`,
    (x) => x < 60,
  )
  row(
    'proof-of-work gate costs ≤ 10 % of ingest (issue 14; closed loop, same run)',
    h('gates', 'pow_cost'),
    (x) => `${(x * 100).toFixed(1)} %`,
    (x) => x <= 0.1,
  )
  row(
    'proof-of-work gate: gateway CPU per 202 at the same rate (issue 14)',
    h('gates', 'pow_cpu_cost'),
    (x) => `+${(x * 100).toFixed(1)} %`,
    (x) => x <= 0.1,
  )
  row(
    'sealing at the gateway costs ≤ 10 % of ingest → make it the default (issue 11)',
    h('gates', 'seal_cost'),
    (x) => `${(x * 100).toFixed(1)} %`,
    (x) => x <= 0.1,
  )
  row(
    "SMS sent/s ≥ 90 % of the provider's rate limit while it binds (issue 14)",
    h('sms', 'share_of_limit'),
    (x) => `${Math.round(x * 100)} %`,
    (x) => x >= 0.9,
  )
  row(
    'one-time code delivered in < 5 s while 100,000 receipts wait (issue 14)',
    h('sms', 'otp_ms'),
    (x) => `${(x / 1000).toFixed(2)} s`,
    (x) => x < 5000,
  )
  return [
    '| target (issues 6, 11, 13, 14) | measured | | bound on this machine, from this run |',
    '|---|---:|---|---|',
    ...rows,
    '',
  ].join('\n')
}
