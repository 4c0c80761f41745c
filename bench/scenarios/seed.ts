import { execFile } from 'node:child_process'
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import amqp from 'amqplib'
import pg from 'pg'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/context.js'
import { skipped } from '../lib/context.js'
import { allocateBase, type ClosedLoopResult, wrk } from '../lib/load.js'
import { freePort, ROOT } from '../lib/procs.js'
import { dropDatabase, PG_ADMIN } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'
import { cpuPct, type Measured, measure, rabbitPid, treeCpuSeconds } from '../lib/system.js'

const execFileP = promisify(execFile)

/**
 * The seed's design (shared/baselines/seed-python: Starlette ×2 + Celery over RabbitMQ +
 * PostgreSQL, Debian packages), run as its README says, from a writable copy in bench/.seed, with
 * the same wrk load as Sabt's ingest. Isolated from other engineers: its own database and its own
 * RabbitMQ vhost (its queue names, `record` and `check`, are fixed). Measures ingest (workers
 * stopped), then the drain of that backlog with the workers started: rows recorded/s and checks/s
 * against its 20 ms mock verifier.
 */
const SOURCE = process.env.SABT_SEED_DIR ?? join(ROOT, '..', '..', 'shared', 'baselines', 'seed-python')
const PY = process.env.SABT_SEED_PY ?? '/usr/bin/python3'

function findSource(): string | null {
  for (const c of [
    SOURCE,
    '/work/shared/baselines/seed-python',
    join(ROOT, '..', 'shared', 'baselines', 'seed-python'),
  ])
    if (existsSync(join(c, 'run.sh'))) return c
  return null
}

async function pyHasPackages(): Promise<boolean> {
  try {
    await execFileP(PY, ['-c', 'import celery, starlette, uvicorn, psycopg2, gevent, requests'])
    return true
  } catch {
    return false
  }
}

interface IngestRun {
  connections: number
  run: number
  m: Measured<ClosedLoopResult>
}
interface DrainRun {
  run: number
  backlog: number
  rows: number
  checks: number
  rows_per_s: number
  checks_per_s: number
  m: Measured<void>
}

export const seed: Scenario = {
  name: 'seed',
  title: "The seed's design (Python: Starlette + Celery + RabbitMQ + PostgreSQL), same load",
  byDefault: false,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const src = findSource()
    if (!src) return skipped('seed', this.title, 'shared/baselines/seed-python not found (set SABT_SEED_DIR)')
    if (!(await pyHasPackages()))
      return skipped(
        'seed',
        this.title,
        `${PY} cannot import the seed's Debian packages: run \`bench/.seed/run.sh setup\` (apt-get install python3-starlette python3-uvicorn python3-uvloop python3-httptools python3-celery python3-psycopg2 python3-gevent python3-requests)`,
      )
    const dir = join(ROOT, 'bench', '.seed')
    rmSync(dir, { recursive: true, force: true })
    cpSync(src, dir, { recursive: true })
    // Inside this repository Node would read mock_verifier.js as ESM (our package.json says
    // "type": "module"); the seed's files are CommonJS, as in their own folder.
    writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}\n')
    execFileP('chmod', ['-R', 'u+w', dir]).catch(() => {})
    const id = `${Date.now().toString(36)}`
    const db = `bench_seed_${id}`
    const vhost = `bench_seed_${id}`
    const apiPort = await freePort()
    const mockPort = await freePort()
    const env = {
      ...process.env,
      PY,
      API_PORT: String(apiPort),
      VERIFY_PORT: String(mockPort),
      VERIFY_LATENCY_MS: '20',
      VERIFIER_URL: `http://127.0.0.1:${mockPort}/verify`,
      PG_DSN: `host=127.0.0.1 port=5432 user=postgres dbname=${db}`,
      BROKER_URL: `amqp://guest:guest@127.0.0.1:5672/${vhost}`,
      STATE: join(dir, '.run'),
    }
    const runSh = (...args: string[]) =>
      execFileP(join(dir, 'run.sh'), args, { cwd: dir, env, timeout: 120_000 }).then((r) => r.stdout)
    const pidOf = (name: string) => {
      try {
        return Number(readFileSync(join(dir, '.run', `${name}.pid`), 'utf8').trim())
      } catch {
        return 0
      }
    }
    const admin = new pg.Client({ connectionString: PG_ADMIN })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(db)}`)
    await admin.end()
    const u = new URL(PG_ADMIN)
    u.pathname = `/${db}`
    const dbc = new pg.Client({ connectionString: u.toString() })
    await dbc.connect()
    await dbc.query(readFileSync(join(dir, 'schema.sql'), 'utf8'))
    await execFileP('rabbitmqctl', ['-q', 'add_vhost', vhost])
    await execFileP('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*'])
    const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(vhost)}`)
    conn.on('error', () => {})
    // A fresh channel per call: asking about a queue Celery has not declared yet closes the channel.
    const onChannel = async <T>(f: (ch: amqp.Channel) => Promise<T>, fallback: T): Promise<T> => {
      const ch = await conn.createChannel()
      ch.on('error', () => {})
      try {
        return await f(ch)
      } catch {
        return fallback
      } finally {
        await ch.close().catch(() => {})
      }
    }
    const depth = (q: string) => onChannel(async (ch) => (await ch.checkQueue(q)).messageCount, 0)
    const purge = async () => {
      for (const q of ['record', 'check']) await onChannel((ch) => ch.purgeQueue(q), null)
    }
    const beam = rabbitPid()
    const conns = ctx.quick ? [64] : [16, 64, 256]
    const ingestS = ctx.quick ? 3 : 10
    const ingest: IngestRun[] = []
    const drains: DrainRun[] = []
    try {
      await runSh('start', 'mock')
      await runSh('start', 'api')
      const url = `http://127.0.0.1:${apiPort}/registrations`
      await wrk({ url, connections: 64, durationS: 2, campaign: `seed-warm-${id}` })
      await purge()
      for (let run = 1; run <= ctx.runs; run++)
        for (const c of conns) {
          await ctx.idle()
          const m = await measure(
            {
              server: () => treeCpuSeconds(pidOf('api')),
              ...(beam ? { rabbitmq: () => treeCpuSeconds(beam) } : {}),
            },
            () =>
              wrk({
                url,
                connections: c,
                durationS: ingestS,
                campaign: `seed-${id}-${run}-${c}`,
                base: allocateBase(),
              }),
          )
          ingest.push({ connections: c, run, m })
          ctx.log(
            `  seed ingest c=${c} run ${run}: ${m.result.accepted_rps} 2xx/s p99 ${m.result.p99_ms} ms, cpu% ${JSON.stringify(cpuPct(m))}`,
          )
          await purge()
        }
      // Drain: a backlog from an ingest phase at 64 connections, then the workers start.
      for (let run = 1; run <= ctx.runs; run++) {
        await dbc.query('TRUNCATE registration_checks, registrations')
        await purge()
        await wrk({
          url,
          connections: 64,
          durationS: ctx.quick ? 3 : 10,
          campaign: `seed-drain-${id}-${run}`,
        })
        await new Promise((r) => setTimeout(r, 1000))
        const backlog = await depth('record')
        await ctx.idle()
        const m = await measure(
          {
            record: () => treeCpuSeconds(pidOf('record')) ?? 0,
            check: () => treeCpuSeconds(pidOf('check')) ?? 0,
            ...(beam ? { rabbitmq: () => treeCpuSeconds(beam) } : {}),
          },
          async () => {
            await runSh('start', 'workers')
            let last = ''
            let lastChange = Date.now()
            for (;;) {
              await new Promise((r) => setTimeout(r, 1000))
              const r = (
                await dbc.query<{ r: number; c: number }>(
                  'SELECT (SELECT count(*)::int FROM registrations) AS r, (SELECT count(*)::int FROM registration_checks) AS c',
                )
              ).rows[0]!
              const key = `${r.r}/${r.c}`
              if (key !== last) {
                last = key
                lastChange = Date.now()
              }
              if (r.r >= backlog && r.c >= r.r) break
              if (Date.now() - lastChange > 30_000) {
                ctx.log(`  seed drain stalled at ${key} of ${backlog}`)
                break
              }
            }
          },
        )
        await runSh('stop', 'workers')
        const s = (
          await dbc.query<{ rows: number; rspan: number; checks: number; cspan: number }>(
            `SELECT (SELECT count(*)::int FROM registrations) AS rows,
                    (SELECT extract(epoch FROM max(created_at) - min(created_at))::float8 FROM registrations) AS rspan,
                    (SELECT count(*)::int FROM registration_checks) AS checks,
                    (SELECT extract(epoch FROM max(checked_at) - min(checked_at))::float8 FROM registration_checks) AS cspan`,
          )
        ).rows[0]!
        const d: DrainRun = {
          run,
          backlog,
          rows: s.rows,
          checks: s.checks,
          rows_per_s: Math.round(s.rows / Math.max(0.001, s.rspan)),
          checks_per_s: Math.round(s.checks / Math.max(0.001, s.cspan)),
          m,
        }
        drains.push(d)
        ctx.log(
          `  seed drain run ${run}: ${d.rows} rows at ${d.rows_per_s}/s, ${d.checks} checks at ${d.checks_per_s}/s, cpu% ${JSON.stringify(cpuPct(m))}`,
        )
      }
    } finally {
      await runSh('stop', 'all').catch(() => {})
      await conn.close().catch(() => {})
      await dbc.end().catch(() => {})
      await execFileP('rabbitmqctl', ['-q', 'delete_vhost', vhost]).catch(() => {})
      await dropDatabase(db).catch(() => {})
    }
    const at = (c: number) => ingest.filter((r) => r.connections === c)
    const best = Math.max(...conns.map((c) => over(at(c), (r) => r.m.result.accepted_rps).median))
    const rows = over(drains, (d) => d.rows_per_s)
    const checks = over(drains, (d) => d.checks_per_s)
    const sabtIngest = ctx.earlier.ingest?.headline?.gateway_max_rps
    const sabtDrain = ctx.earlier.drain?.headline?.recorded_per_s
    const ratio = (a: number | undefined, b: number) => (a && b ? `${(a / b).toFixed(1)}×` : '—')
    const md = [
      `Ingest with the same wrk load as Sabt's (distinct valid registrations; the seed ignores \`attributes\`), workers stopped; then the drain of a 64-connection backlog with the record (prefork ×2) and check (gevent ×100, 20 ms mock) workers started.`,
      '',
      '| seed | conns | 2xx req/s | p50 ms | p99 ms | p99.9 ms | API CPU % (2 uvicorn workers) | broker CPU % |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
      ...conns.map((c) => {
        const rs = at(c)
        return `| ingest | ${c} | ${fmt(
          over(rs, (r) => r.m.result.accepted_rps),
          0,
        )} | ${fmt(
          over(rs, (r) => r.m.result.p50_ms),
          2,
        )} | ${fmt(
          over(rs, (r) => r.m.result.p99_ms),
          2,
        )} | ${fmt(
          over(rs, (r) => r.m.result.p999_ms),
          2,
        )} | ${fmt(
          over(rs, (r) => cpuPct(r.m).server!),
          0,
        )} | ${fmt(
          over(rs, (r) => cpuPct(r.m).rabbitmq ?? Number.NaN),
          0,
        )} |`
      }),
      '',
      `| seed drain | per second | record workers CPU % | check workers CPU % |`,
      '|---|---:|---:|---:|',
      `| rows recorded | ${fmt(rows, 0)} | ${fmt(
        over(drains, (d) => cpuPct(d.m).record!),
        0,
      )} | |`,
      `| checks (20 ms mock) | ${fmt(checks, 0)} | | ${fmt(
        over(drains, (d) => cpuPct(d.m).check!),
        0,
      )} |`,
      '',
      `Sabt ÷ seed: ingest ${ratio(sabtIngest, best)}, recording ${ratio(sabtDrain, rows.median)}${ctx.earlier.checks?.headline?.checks_per_s_20ms ? `, checks ${ratio(ctx.earlier.checks.headline.checks_per_s_20ms, checks.median)}` : ', checks — (Sabt checks not measured in this run)'}.`,
      '',
    ].join('\n')
    return {
      name: 'seed',
      title: this.title,
      markdown: md,
      data: { ingest, drains, source: src },
      headline: { ingest_rps: best, drain_rps: rows.median, checks_per_s: checks.median },
    }
  },
}
