/**
 * Sabt's benchmarks: named scenarios against the real roles as separate processes, the shared
 * PostgreSQL and RabbitMQ, and floors measured in the same run. Prints a markdown report, writes
 * bench/results/<timestamp>.json, and (a full run) refreshes the latest tables in BENCHMARKS.md.
 *
 *   npm run bench                      every default scenario, each figure the median of 3 runs
 *   npm run bench -- --quick           a smoke run (< 2 min): 1 run, short phases, small backlog
 *   npm run bench -- --vs-seed         also the seed's Python design, with the same load
 *   npm run bench -- --only ingest,drain   just these scenarios (add --latest to refresh BENCHMARKS.md with them)
 *   npm run bench -- --profile         roles under --cpu-prof (profiles in bench/results/profiles/)
 *   npm run bench:checks               the checks scenario (checks/s, share of the providers' quota)
 *   npm run bench -- --only draw       the lottery draw of 1,000,000 accepted registrations (SABT_BENCH_DRAW_N)
 *
 * Tuning goes through Sabt's own environment variables (SABT_BATCH_SIZE, SABT_RECORDER_PREFETCH,
 * DATABASE_POOL_SIZE, …): set them on the command line; the roles inherit them.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { type BenchContext, makeIdle, type Scenario, type ScenarioResult } from './lib/context.js'
import { hasWrk } from './lib/load.js'
import { ROOT } from './lib/procs.js'
import { pgVersion } from './lib/sabt.js'
import { machineInfo, waitIdle } from './lib/system.js'
import { SCENARIOS } from './scenarios/index.js'
import { targetsTable } from './scenarios/targets.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'vs-seed': { type: 'boolean', default: false },
    only: { type: 'string' },
    runs: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    /** With --only: refresh BENCHMARKS.md's latest section too (a full run always does). */
    latest: { type: 'boolean', default: false },
  },
})

const quick = values.quick ?? false
const runs = Number(values.runs ?? (quick ? 1 : 3))
const only = values.only?.split(',').map((s) => s.trim())
const stamp = new Date().toISOString().replace(/[:.]/g, '-')
const resultsDir = join(ROOT, 'bench', 'results')
const profileDir = join(resultsDir, 'profiles', stamp)
mkdirSync(resultsDir, { recursive: true })
if (values.profile) mkdirSync(profileDir, { recursive: true })

const log = (msg: string) => process.stderr.write(`${msg}\n`)

async function main(): Promise<number> {
  const chosen: Scenario[] = SCENARIOS.filter((s) =>
    only ? only.includes(s.name) : s.byDefault || (s.name === 'seed' && values['vs-seed']),
  )
  // The draw and first-come scenarios send no HTTP load: `--only draw,first-come` runs without wrk.
  if (chosen.some((s) => s.name !== 'draw' && s.name !== 'first-come') && !(await hasWrk())) {
    log('wrk is missing: apt-get install -y wrk (the closed-loop load generator)')
    return 2
  }
  if (only)
    for (const o of only) if (!SCENARIOS.some((s) => s.name === o)) throw new Error(`unknown scenario ${o}`)
  const startState = await waitIdle(100, 0)
  const machine = await machineInfo(await pgVersion())
  log(`Sabt bench: ${chosen.map((s) => s.name).join(', ')} — ${runs} run(s) each${quick ? ' (quick)' : ''}`)
  log(`machine: ${machine.cores} cores, ${machine.cpu_model}, load ${machine.loadavg.join(' ')}`)
  const ctx: BenchContext = {
    quick,
    runs,
    profile: values.profile ?? false,
    profileDir,
    log,
    idle: makeIdle(quick),
    earlier: {},
  }
  const started = Date.now()
  const results: ScenarioResult[] = []
  for (const s of chosen) {
    log(`\n## ${s.title}`)
    const t = Date.now()
    try {
      const r = await s.run(ctx)
      results.push(r)
      ctx.earlier[s.name] = r
    } catch (err) {
      log(`  ${s.name} failed: ${(err as Error).stack}`)
      results.push({
        name: s.name,
        title: s.title,
        markdown: `_Failed: ${(err as Error).message}_\n`,
        data: { error: (err as Error).message },
        skipped: `failed: ${(err as Error).message}`,
      })
    }
    log(`  (${Math.round((Date.now() - t) / 1000)} s)`)
  }
  const endState = await waitIdle(100, 0)
  const tuning = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => k.startsWith('SABT_') || k === 'DATABASE_POOL_SIZE'),
  )
  const header = [
    `Run ${new Date().toISOString()} · ${quick ? 'quick (1 run, short phases: a smoke check, not figures to quote)' : `median (min–max) of ${runs} runs`} · ${Math.round((Date.now() - started) / 1000)} s`,
    `Machine: ${machine.cores} cores, ${machine.cpu_model}, ${machine.memory_gib} GiB; Node ${machine.node}, PostgreSQL ${machine.postgresql}, RabbitMQ ${machine.rabbitmq}, ${machine.wrk ?? 'wrk ?'}.`,
    `Machine state: load average ${machine.loadavg.join(' / ')} at the start, busy ${startState.busy_pct} % → ${endState.busy_pct} % (before each measured phase the bench waits for < ${process.env.SABT_BENCH_IDLE_PCT ?? 12} % busy; each run records what it found). All processes share the same 2 cores: load generator, roles, RabbitMQ, PostgreSQL.`,
    `Config: \`config/sabt.yaml\`${
      Object.keys(tuning).length
        ? `; environment ${Object.entries(tuning)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`
        : '; Sabt defaults'
    }.`,
  ]
  const md = [
    header.join('\n'),
    '',
    targetsTable(results),
    ...results.map((r) => `### ${r.title}\n\n${r.markdown}`),
  ].join('\n')
  process.stdout.write(`\n${md}\n`)
  const file = join(resultsDir, `${stamp}${quick ? '-quick' : ''}.json`)
  writeFileSync(
    file,
    `${JSON.stringify({ stamp, quick, runs, machine, start_state: startState, end_state: endState, tuning, results }, null, 1)}\n`,
  )
  log(`\nresults: ${file}`)
  if (!quick && (!only || values.latest) && !values['no-write']) updateBenchmarks(md, file)
  return results.some((r) => r.data.error) ? 1 : 0
}

const START = '<!-- bench:latest:start (written by npm run bench) -->'
const END = '<!-- bench:latest:end -->'

function updateBenchmarks(md: string, file: string): void {
  const path = join(ROOT, 'BENCHMARKS.md')
  let doc: string
  try {
    doc = readFileSync(path, 'utf8')
  } catch {
    doc = `# Sabt benchmarks\n\n${START}\n${END}\n`
  }
  const block = `${START}\n\n${md}\n\nRaw results: \`${file.slice(ROOT.length + 1)}\`\n\n${END}`
  const i = doc.indexOf(START)
  const j = doc.indexOf(END)
  doc = i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + END.length) : `${doc}\n${block}\n`
  writeFileSync(path, doc)
  // Aligned as the linter wants it (CI runs `biome check`), so a bench run commits as it is.
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/biome'), ['format', '--write', path], { stdio: 'ignore' })
  } catch {
    log('BENCHMARKS.md: biome format failed; run `npm run format` before committing')
  }
  log(`BENCHMARKS.md updated`)
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`bench: ${(err as Error).stack}`)
    process.exit(1)
  },
)
