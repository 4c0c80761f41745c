import type { Sent } from './load.js'
import { until } from './run.js'
import type { Stack } from './stack.js'

export interface Row {
  scenario: string
  sent: number
  accepted: number
  recorded: number
  lost: number
  duplicates: number
  recoverMs: number | null
  notes: string
}

interface Counts {
  ids: number
  lost: number
  found: number
  twice: number
  dupRows: number
  multi: number
  verdicted: number
  total: number
}

/**
 * Counts in PostgreSQL (never from the broker's counters) what became of the ids answered 202:
 * lost = not in registrations nor in duplicates; duplicates = an id found twice, a duplicate row
 * for one of them, or a person recorded twice (each simulated person submits once, so any of
 * these is a message processed twice); verdicted = accepted, rejected or failed.
 */
export async function count(stack: Stack, accepted: Sent[]): Promise<Counts> {
  const ids = accepted.map((s) => s.id!).join('\n')
  const [row] = await stack.psql(`
CREATE TEMP TABLE ids (id uuid PRIMARY KEY);
COPY ids FROM STDIN;
${ids}${ids ? '\n' : ''}\\.
SELECT
  (SELECT count(*) FROM ids),
  (SELECT count(*) FROM ids i WHERE NOT EXISTS (SELECT 1 FROM registrations r WHERE r.id = i.id)
                                AND NOT EXISTS (SELECT 1 FROM duplicates d WHERE d.id = i.id)),
  (SELECT count(*) FROM registrations r JOIN ids USING (id)),
  (SELECT count(*) FROM ids i WHERE EXISTS (SELECT 1 FROM registrations r WHERE r.id = i.id)
                                AND EXISTS (SELECT 1 FROM duplicates d WHERE d.id = i.id)),
  (SELECT count(*) FROM duplicates),
  (SELECT count(*) FROM (SELECT 1 FROM registrations GROUP BY campaign, national_id_index HAVING count(*) > 1) x),
  (SELECT count(*) FROM registrations r JOIN ids USING (id) WHERE r.status IN ('accepted', 'rejected', 'failed')),
  (SELECT count(*) FROM registrations);
`)
  const [ids_, lost, found, twice, dupRows, multi, verdicted, total] = row!.map(Number)
  return {
    ids: ids_!,
    lost: lost!,
    found: found!,
    twice: twice!,
    dupRows: dupRows!,
    multi: multi!,
    verdicted: verdicted!,
    total: total!,
  }
}

/** Waits (up to timeoutMs) until every 202'd id is recorded, then reports the scenario's row. */
export async function settle(
  stack: Stack,
  scenario: string,
  sent: Sent[],
  opts: { before: number; recoverMs: number | null; notes?: string; timeoutMs?: number },
): Promise<Row> {
  const accepted = sent.filter((s) => s.status === 202)
  let last: Counts | null = null
  try {
    await until(
      `${scenario}: every 202 recorded`,
      async () => {
        last = await count(stack, accepted)
        return last.lost === 0 ? last : undefined
      },
      opts.timeoutMs ?? 180_000,
      1000,
    )
  } catch {
    // reported below with what was found
  }
  const c = last ?? (await count(stack, accepted))
  return {
    scenario,
    sent: sent.length,
    accepted: accepted.length,
    // Every record the scenario added, 202'd or not: a request whose answer was lost with a killed
    // gateway may still have been recorded (the broker had confirmed it).
    recorded: c.total - opts.before,
    lost: c.lost,
    duplicates: c.twice + c.dupRows + c.multi,
    recoverMs: opts.recoverMs,
    notes: opts.notes ?? '',
  }
}

export function table(rows: Row[]): string {
  const fmt = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(1)} s`)
  return [
    '| scenario | sent | 202s | recorded | lost | duplicates | time to recover | notes |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.sent} | ${r.accepted} | ${r.recorded} | ${r.lost} | ${r.duplicates} | ${fmt(r.recoverMs)} | ${r.notes} |`,
    ),
  ].join('\n')
}
