import amqp from 'amqplib'
import pg from 'pg'
import { loadConfigFile } from '../../src/config/campaigns.js'
import { loadEnv } from '../../src/config/env.js'
import { deleteTopology } from '../../src/mq/topology.js'
import { topologyOptions } from '../../src/runtime/start.js'
import type { Cluster } from './cluster.js'
import type { Load } from './load.js'

export interface Tally {
  scenario: string
  sent: number
  accepted: number
  refused: number
  recorded: number
  lost: number
  duplicates: number
  unsettled: number
  recoverMs: number | null
  notes: string
}

async function query<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  await c.connect()
  try {
    return (await c.query<T>(text, values)).rows
  } finally {
    await c.end()
  }
}

/**
 * Counts against PostgreSQL (never against the broker's counters): every 202'd id must be there
 * exactly once, and every record must reach a verdict or a dead letter. Waits for the pipeline to
 * drain up to `timeoutMs`, then reports what it found.
 */
export async function settle(
  cluster: Cluster,
  load: Load,
  scenario: string,
  timeoutMs = 180_000,
): Promise<Omit<Tally, 'recoverMs' | 'notes'>> {
  const url = cluster.env.DATABASE_URL!
  const accepted = load.accepted()
  const ids = accepted.map((a) => a.id!)
  const until = Date.now() + timeoutMs
  let last: Omit<Tally, 'recoverMs' | 'notes'> | null = null
  for (;;) {
    try {
      const found = await query<{ id: string }>(
        url,
        'SELECT id::text FROM registrations WHERE id = ANY($1) UNION ALL SELECT id::text FROM duplicates WHERE id = ANY($1)',
        [ids],
      )
      const counts = await query<{ recorded: number; unsettled: number; dups: number; multi: number }>(
        url,
        `SELECT (SELECT count(*)::int FROM registrations WHERE campaign = 'chaos') AS recorded,
                (SELECT count(*)::int FROM registrations r WHERE campaign = 'chaos' AND status NOT IN ('accepted', 'rejected')
                   AND NOT (status = 'failed' AND EXISTS (SELECT 1 FROM check_results c WHERE c.registration_id = r.id AND c.outcome = 'error'))) AS unsettled,
                (SELECT count(*)::int FROM duplicates) AS dups,
                (SELECT count(*)::int FROM (SELECT national_id_index FROM registrations GROUP BY 1 HAVING count(*) > 1) x) AS multi`,
      )
      const seen = new Map<string, number>()
      for (const f of found) seen.set(f.id, (seen.get(f.id) ?? 0) + 1)
      const lost = ids.filter((id) => !seen.has(id)).length
      const twice = [...seen.values()].filter((n) => n > 1).length
      const c = counts[0]!
      last = {
        scenario,
        sent: load.sent.length,
        accepted: accepted.length,
        refused: load.sent.length - accepted.length,
        recorded: c.recorded,
        lost,
        // Each simulated person submits once: any duplicate row, any person recorded twice, any
        // id found twice is a double-processing bug.
        duplicates: twice + c.dups + c.multi,
        unsettled: c.unsettled,
      }
      if (lost === 0 && c.unsettled === 0) return last
    } catch {
      // the database may be restarting
    }
    if (Date.now() > until) {
      if (!last) throw new Error('could not read PostgreSQL to settle the scenario')
      return last
    }
    await new Promise((r) => setTimeout(r, 500))
  }
}

export async function dropCluster(cluster: Cluster): Promise<void> {
  const env = loadEnv(cluster.env)
  const config = loadConfigFile(cluster.env.SABT_CONFIG ?? 'chaos/chaos.yaml', cluster.env)
  try {
    const conn = await amqp.connect(env.AMQP_URL)
    const ch = await conn.createChannel()
    await deleteTopology(ch, topologyOptions(env, config)).catch(() => {})
    await conn.close().catch(() => {})
  } catch {}
  const name = new URL(env.DATABASE_URL).pathname.slice(1)
  await query(
    'postgres://postgres@127.0.0.1:5432/postgres',
    `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`,
  ).catch(() => {})
}

export function table(rows: Tally[]): string {
  const head =
    '| scenario | sent | 202s | refused (503/conn.) | recorded | lost | duplicates | unsettled | time to recover | notes |'
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|'
  const fmt = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`)
  return [
    head,
    sep,
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.sent} | ${r.accepted} | ${r.refused} | ${r.recorded} | ${r.lost} | ${r.duplicates} | ${r.unsettled} | ${fmt(r.recoverMs)} | ${r.notes} |`,
    ),
  ].join('\n')
}
