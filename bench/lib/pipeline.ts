import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type BenchContext, profileArgs } from './context.js'
import { freePort, type Proc, ROOT } from './procs.js'
import type { BenchSabt } from './sabt.js'
import { cpuSeconds, rabbitPid } from './system.js'

/** Whether a role is implemented in the build (the checker and simulator land after the core). */
export function hasRole(role: 'checker' | 'simulator'): boolean {
  return existsSync(join(ROOT, 'dist', 'roles', role))
}

export function checksAvailable(): { ok: true } | { ok: false; why: string } {
  const missing = (['checker', 'simulator'] as const).filter((r) => !hasRole(r))
  return missing.length === 0
    ? { ok: true }
    : {
        ok: false,
        why: `needs the ${missing.join(' and ')} role${missing.length > 1 ? 's' : ''}, not in this build yet (src/roles/${missing[0]}/ is missing); the scenario runs as soon as they are merged`,
      }
}

export type Running = Record<string, Proc & { url: string }>

/**
 * Every role as its own process, as in production: gateway, recorder, status, and the checker
 * and the provider simulator when the build has them.
 */
export async function startPipeline(
  sabt: BenchSabt,
  ctx: BenchContext,
  opts: { checks?: boolean } = {},
): Promise<Running> {
  const prof = (name: string) => profileArgs(ctx, name)
  const roles: Running = {}
  const withChecks = (opts.checks ?? true) && checksAvailable().ok
  if (withChecks)
    roles.simulator = await startSimulator(
      sabt,
      Number(process.env.SABT_BENCH_PROVIDER_LATENCY_MS ?? 20),
      prof(`${sabt.tag}-simulator`),
    )
  roles.recorder = await sabt.start('recorder', {
    name: `${sabt.tag}-recorder`,
    nodeArgs: prof(`${sabt.tag}-recorder`),
  })
  if (withChecks)
    roles.checker = await sabt.start('checker', {
      name: `${sabt.tag}-checker`,
      nodeArgs: prof(`${sabt.tag}-checker`),
    })
  roles.status = await sabt.start('status', {
    name: `${sabt.tag}-status`,
    nodeArgs: prof(`${sabt.tag}-status`),
  })
  roles.gateway = await sabt.start('gateway', {
    name: `${sabt.tag}-gateway`,
    nodeArgs: prof(`${sabt.tag}-gateway`),
  })
  return roles
}

/**
 * The provider simulator on its own port, every provider at a fixed latency (median = p99), no
 * simulated errors or rate limits: the checker's own limits (config/sabt.yaml) are what bind.
 * The checkers started after it call it (SABT_SIMULATOR_URL).
 */
export async function startSimulator(
  sabt: BenchSabt,
  latencyMs: number,
  nodeArgs: string[] = [],
): Promise<Proc & { url: string }> {
  const port = await freePort()
  const knob = { latency_median_ms: latencyMs, latency_p99_ms: latencyMs }
  const p = await sabt.start('simulator', {
    name: `${sabt.tag}-simulator`,
    nodeArgs,
    env: {
      SABT_SIMULATOR_PORT: String(port),
      SABT_SIMULATOR_KNOBS: JSON.stringify({ identity: knob, mobile: knob, eligibility: knob }),
    },
  })
  sabt.env.SABT_SIMULATOR_URL = `http://127.0.0.1:${port}`
  return p
}

/** CPU readers for every role, the broker, the database backends of this Sabt, for measure(). */
export function pipelineCpu(
  sabt: BenchSabt,
  roles: Running,
  pgPids: () => number[],
): Record<string, () => number | null> {
  const out: Record<string, () => number | null> = {}
  for (const [name, p] of Object.entries(roles)) out[name] = () => cpuSeconds(p.pid)
  const beam = rabbitPid()
  if (beam) out.rabbitmq = () => cpuSeconds(beam)
  // Backends come and go (pools open and close connections): a sum over the live ones would fall
  // when one exits. Summed per backend instead, each one's CPU since it was last seen (a backend
  // that appears mid-phase counts from its start; measure() samples every 250 ms).
  const seen = new Map<number, number>()
  let total = 0
  out.postgres = () => {
    for (const pid of pgPids()) {
      const cpu = cpuSeconds(pid)
      if (cpu === null) continue
      const before = seen.get(pid)
      total += before === undefined || cpu < before ? cpu : cpu - before
      seen.set(pid, cpu)
    }
    return total
  }
  void sabt
  return out
}

/** The sabt-* backends of this database (the roles' pools). */
export async function roleBackends(sabt: BenchSabt): Promise<number[]> {
  return (
    await sabt.sql<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'sabt-%'",
      [sabt.dbName],
    )
  ).map((r) => r.pid)
}

/**
 * Loss and duplicates: every 202'd id must be in PostgreSQL exactly once. Waits until the intake
 * queue is empty and the row count is stable, then compares.
 */
export async function lossCheck(
  sabt: BenchSabt,
  idsFile: string,
  timeoutMs = 180_000,
): Promise<{ acknowledged: number; present: number; lost: number; duplicates: number; extra: number }> {
  const ids = readFileSync(idsFile, 'utf8').split('\n').filter(Boolean)
  const until = Date.now() + timeoutMs
  let last = -1
  for (;;) {
    const [{ c }] = (await sabt.sql<{ c: number }>('SELECT count(*)::int AS c FROM registrations')) as [
      { c: number },
    ]
    const depth = await sabt.intakeDepth()
    if (depth === 0 && c === last && c >= ids.length) break
    if (Date.now() > until) break
    last = c
    await new Promise((r) => setTimeout(r, 1000))
  }
  const [r] = await sabt.sql<{ present: number; total: number; dups: number; distinct_ids: number }>(
    `SELECT (SELECT count(*)::int FROM registrations r JOIN (SELECT DISTINCT id FROM unnest($1::uuid[]) AS i(id)) i ON r.id = i.id) AS present,
            (SELECT count(DISTINCT id)::int FROM unnest($1::uuid[]) AS i(id)) AS distinct_ids,
            (SELECT count(*)::int FROM registrations) AS total,
            (SELECT count(*)::int FROM duplicates) AS dups`,
    [ids],
  )
  return {
    acknowledged: r!.distinct_ids,
    present: r!.present,
    lost: r!.distinct_ids - r!.present,
    // Every request is a different person: a duplicate row means one registration was stored twice.
    duplicates: r!.dups + (ids.length - r!.distinct_ids),
    extra: r!.total - r!.present,
  }
}
