import { v7 as uuidv7 } from 'uuid'
import { CAMPAIGN_DEFAULTS } from '../../src/config/campaigns.js'
import type { RecordRow } from '../../src/db/registrations.js'
import { writeRecordBatch } from '../../src/db/registrations.js'
import { parseDataKeys, Sealer } from '../../src/privacy/sealing.js'
import { intakeBodies, intakeMessage } from '../lib/bodies.js'
import { type BenchContext, profileArgs, type Scenario, type ScenarioResult } from '../lib/context.js'
import { BenchSabt } from '../lib/sabt.js'
import { fmt, over } from '../lib/stats.js'
import { cpuPct, cpuSeconds, measure, rabbitPid } from '../lib/system.js'

/**
 * Drain: a backlog of N intake messages waits in the queue (filled by one fast confirmed
 * publisher), then the recorder alone starts and records them. Recorded/s next to a bare unnest
 * INSERT of the same rows (the recorder's own statement, batch by batch, nothing else) in the same
 * run, on the same table. Every published registration must be in PostgreSQL exactly once.
 */
const CAMPAIGN = 'demo'

interface DrainRun {
  run: number
  n: number
  fill: { published: number; seconds: number; per_s: number }
  recorded: number
  duplicates: number
  lost: number
  /** N / (last recorded_at − first recorded_at): the recorder's steady rate (the seed's method). */
  recorded_per_s: number
  /** N / (recorder process start → last row): includes the process start. */
  wall_per_s: number
  cpu_s: Record<string, number>
  cpu_pct: Record<string, number>
  recorder_us_per_row: number
  machine_busy_pct: number
  bare: { rows: number; seconds: number; per_s: number; batch: number; pg_cpu_pct: number }
  /** The same, with the table's own triggers off (migration 0011's tracking codes and outbox rows). */
  untriggered: { per_s: number; pg_cpu_pct: number }
  idle: unknown
}

export const drain: Scenario = {
  name: 'drain',
  title: 'Drain (recorder alone, from a waiting backlog)',
  byDefault: true,
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const n = Number(process.env.SABT_BENCH_DRAIN_N ?? (ctx.quick ? 20_000 : 200_000))
    const batch = Number(process.env.SABT_BATCH_SIZE ?? 1000)
    const sabt = await BenchSabt.create('drain')
    const beam = rabbitPid()
    const sealer = new Sealer(parseDataKeys(sabt.env.SABT_DATA_KEYS!, undefined, sabt.env.SABT_INDEX_KEY!))
    const runs: DrainRun[] = []
    let base = 130_000_000
    try {
      for (let run = 1; run <= ctx.runs; run++) {
        await sabt.truncate()
        await sabt.purgeAll()
        base += 10_000_000
        const ids: string[] = []
        const records: Record<string, unknown>[] = []
        for (let i = 0; i < n; i++) {
          const id = uuidv7()
          ids.push(id)
          records.push(intakeMessage(id, CAMPAIGN, base + i))
        }
        // One shard (the default): messages of many registrations, as gateways publish them now.
        const msgs = intakeBodies(sealer, records).map((body, i) => ({
          id: `${ids[i]}+`,
          campaign: CAMPAIGN,
          nationalId: '',
          body,
        }))
        const fill = await sabt.fillIntake(msgs)
        ctx.log(
          `  drain run ${run}: backlog of ${fill.published} filled at ${fill.per_s} msg/s (one confirmed publisher)`,
        )

        const idle = await ctx.idle()
        let recorderPid = 0
        let pgPids: number[] = []
        const pgCpu = () => pgPids.reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0)
        const t0 = Date.now()
        const m = await measure(
          {
            recorder: () => (recorderPid ? cpuSeconds(recorderPid) : 0),
            ...(beam ? { rabbitmq: () => cpuSeconds(beam) } : {}),
            postgres: pgCpu,
          },
          async () => {
            const rec = await sabt.start('recorder', {
              name: 'drain-recorder',
              nodeArgs: profileArgs(ctx, `recorder-${run}`),
            })
            recorderPid = rec.pid
            for (;;) {
              // The recorder's own connections (their CPU from birth is the database's share).
              pgPids = (
                await sabt.sql<{ pid: number }>(
                  "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'sabt-%'",
                  [sabt.dbName],
                )
              ).map((r) => r.pid)
              const [{ c }] = (await sabt.sql<{ c: number }>(
                'SELECT count(*)::int AS c FROM registrations',
              )) as [{ c: number }]
              if (c >= n) break
              if (Date.now() - t0 > 600_000) throw new Error(`drain stalled at ${c} of ${n}`)
              await new Promise((r) => setTimeout(r, 200))
            }
          },
        )
        const wall = (Date.now() - t0) / 1000
        await sabt.stopAll()
        const [span] = await sabt.sql<{ s: number }>(
          'SELECT extract(epoch FROM max(recorded_at) - min(recorded_at))::float8 AS s FROM registrations',
        )
        const [check] = await sabt.sql<{ present: number; total: number; dups: number }>(
          `SELECT (SELECT count(*)::int FROM registrations r JOIN unnest($1::uuid[]) AS i(id) ON r.id = i.id) AS present,
                  (SELECT count(*)::int FROM registrations) AS total,
                  (SELECT count(*)::int FROM duplicates) AS dups`,
          [ids],
        )
        // Bare: the same rows (sealed beforehand, not timed), the recorder's statement, batch after batch.
        await sabt.truncate()
        const rows: RecordRow[] = records.map((x) => ({
          id: x.id as string,
          campaign: CAMPAIGN,
          nationalIdIndex: sealer.blindIndex(x.national_id as string),
          nationalIdSealed: sealer.seal(x.national_id as string, `${x.id}:national_id`),
          mobileSealed: sealer.seal(x.mobile as string, `${x.id}:mobile`),
          keyId: sealer.currentKeyId,
          firstName: x.first_name as string,
          lastName: x.last_name as string,
          birthDate: x.birth_date as string,
          attributes: JSON.stringify(x.attributes),
          receivedAt: x.received_at as number,
          status: 'recorded',
          maxRecordsPerPerson: CAMPAIGN_DEFAULTS.max_records_per_person,
        }))
        await ctx.idle()
        const client = await sabt.pool.connect()
        const [{ pid: barePid }] = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))
          .rows as [{ pid: number }]
        const one = { query: client.query.bind(client) } as unknown as import('pg').Pool
        const bm = await measure({ postgres: () => cpuSeconds(barePid) }, async () => {
          for (let i = 0; i < rows.length; i += batch) await writeRecordBatch(one, rows.slice(i, i + batch))
        })
        // What the triggers of the citizen's side cost (tracking codes, outbox rows): the same again
        // with them off — a floor below what the recorder can ever reach, for the record.
        await sabt.truncate()
        await client.query('ALTER TABLE registrations DISABLE TRIGGER USER')
        const um = await measure({ postgres: () => cpuSeconds(barePid) }, async () => {
          for (let i = 0; i < rows.length; i += batch) await writeRecordBatch(one, rows.slice(i, i + batch))
        })
        await client.query('ALTER TABLE registrations ENABLE TRIGGER USER')
        client.release()
        const r: DrainRun = {
          run,
          n,
          fill,
          recorded: check!.total,
          duplicates: check!.dups,
          lost: n - check!.present,
          recorded_per_s: Math.round(n / Math.max(0.001, span!.s)),
          wall_per_s: Math.round(n / wall),
          cpu_s: m.cpu_s,
          cpu_pct: cpuPct(m),
          recorder_us_per_row: Math.round(((m.cpu_s.recorder ?? Number.NaN) * 1e6) / n),
          machine_busy_pct: m.machine_busy_pct,
          bare: {
            rows: rows.length,
            seconds: bm.wall_s,
            per_s: Math.round(rows.length / bm.wall_s),
            batch,
            pg_cpu_pct: cpuPct(bm).postgres!,
          },
          untriggered: { per_s: Math.round(rows.length / um.wall_s), pg_cpu_pct: cpuPct(um).postgres! },
          idle,
        }
        runs.push(r)
        ctx.log(
          `  drain run ${run}: ${r.recorded_per_s} recorded/s (wall ${r.wall_per_s}/s), recorder ${r.recorder_us_per_row} µs CPU/row, bare INSERT ${r.bare.per_s} rows/s (${r.untriggered.per_s} without triggers), ` +
            `lost ${r.lost}, dups ${r.duplicates}, cpu% ${JSON.stringify(r.cpu_pct)}, machine ${m.machine_busy_pct}%`,
        )
      }
    } finally {
      await sabt.cleanup()
    }
    const s = {
      recorded_per_s: over(runs, (r) => r.recorded_per_s),
      wall_per_s: over(runs, (r) => r.wall_per_s),
      bare_per_s: over(runs, (r) => r.bare.per_s),
      ratio: over(runs, (r) => r.recorded_per_s / r.bare.per_s),
      fill_per_s: over(runs, (r) => r.fill.per_s),
      recorder_cpu: over(runs, (r) => r.cpu_pct.recorder ?? Number.NaN),
      recorder_us_per_row: over(runs, (r) => r.recorder_us_per_row),
      pg_cpu: over(runs, (r) => r.cpu_pct.postgres ?? Number.NaN),
      rabbit_cpu: over(runs, (r) => r.cpu_pct.rabbitmq ?? Number.NaN),
      bare_pg_cpu: over(runs, (r) => r.bare.pg_cpu_pct),
      untriggered_per_s: over(runs, (r) => r.untriggered?.per_s ?? Number.NaN),
      untriggered_pg_cpu: over(runs, (r) => r.untriggered?.pg_cpu_pct ?? Number.NaN),
    }
    const lost = runs.reduce((a, r) => a + r.lost, 0)
    const dups = runs.reduce((a, r) => a + r.duplicates, 0)
    const md = [
      `Backlog of ${n.toLocaleString('en-US')} intake messages (campaign \`demo\`: each new record also publishes its 2 first check messages, confirmed), recorder batch ${batch}, prefetch ${process.env.SABT_RECORDER_PREFETCH ?? 4000}.`,
      '',
      '| | rows/s | recorder CPU % | recorder CPU µs/row | PostgreSQL CPU % (its backends) | RabbitMQ CPU % |',
      '|---|---:|---:|---:|---:|---:|',
      `| recorder: recorded/s (first → last recorded_at) | ${fmt(s.recorded_per_s, 0)} | ${fmt(s.recorder_cpu, 0)} | ${fmt(s.recorder_us_per_row, 0)} | ${fmt(s.pg_cpu, 0)} | ${fmt(s.rabbit_cpu, 0)} |`,
      `| recorder: from process start to the last row | ${fmt(s.wall_per_s, 0)} | | | | |`,
      `| bare \`unnest\` INSERT of the same rows (one connection, batches of ${batch}) | ${fmt(s.bare_per_s, 0)} | — | — | ${fmt(s.bare_pg_cpu, 0)} | — |`,
      `| the same bare INSERT with the table's triggers off (tracking codes, outbox rows: migration 0011) | ${fmt(s.untriggered_per_s, 0)} | — | — | ${fmt(s.untriggered_pg_cpu, 0)} | — |`,
      `| one confirmed publisher filling the intake queue (msg/s) | ${fmt(s.fill_per_s, 0)} | | | | |`,
      '',
      `Recorder ÷ bare insert: ${fmt({ ...s.ratio, median: s.ratio.median * 100, min: s.ratio.min * 100, max: s.ratio.max * 100 }, 0)} %. Lost: ${lost}, duplicates: ${dups} (over ${runs.length} × ${n.toLocaleString('en-US')}).`,
      '',
    ].join('\n')
    return {
      name: 'drain',
      title: this.title,
      markdown: md,
      data: { runs, stats: s },
      headline: {
        recorded_per_s: s.recorded_per_s.median,
        bare_per_s: s.bare_per_s.median,
        ratio_to_bare: s.ratio.median,
        untriggered_per_s: s.untriggered_per_s.median,
        publisher_per_s: s.fill_per_s.median,
        lost,
        duplicates: dups,
      },
    }
  },
}
