import { type IdleWait, waitIdle } from './system.js'

/** What every scenario gets: the mode, how many runs, and the idle gate before measured phases. */
export interface BenchContext {
  quick: boolean
  runs: number
  profile: boolean
  /** Where --cpu-prof writes (when profile is on). */
  profileDir: string
  log(msg: string): void
  /** Waits for a quiet machine before a measured phase; the returned state goes into the results. */
  idle(): Promise<IdleWait>
  /** Results of scenarios that already ran (the open loop needs the ingest maximum, the surge the drain rate). */
  earlier: Record<string, ScenarioResult>
}

/** Node flags that profile a started process into the run's profile directory (none without --profile). */
export function profileArgs(ctx: BenchContext, name: string): string[] {
  return ctx.profile
    ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${name}.cpuprofile`]
    : []
}

export interface ScenarioResult {
  name: string
  title: string
  /** Markdown: one or more tables, and the notes that say what limits each figure. */
  markdown: string
  /** Everything measured, per run, for the JSON file. */
  data: Record<string, unknown>
  skipped?: string
  /** Headline figures for the summary and the targets table. */
  headline?: Record<string, number>
}

export interface Scenario {
  name: string
  title: string
  /** Included in `npm run bench` (all scenarios are included with --only). */
  byDefault: boolean
  run(ctx: BenchContext): Promise<ScenarioResult>
}

export function makeIdle(quick: boolean): () => Promise<IdleWait> {
  const max = Number(process.env.SABT_BENCH_IDLE_PCT ?? 12)
  // --quick does not wait: it samples the machine's state for half a second and records it.
  return () =>
    quick ? waitIdle(max, 0, 500) : waitIdle(max, Number(process.env.SABT_BENCH_IDLE_WAIT_S ?? 90))
}

export function skipped(name: string, title: string, why: string): ScenarioResult {
  return { name, title, markdown: `_Skipped: ${why}_\n`, data: { skipped: why }, skipped: why }
}
