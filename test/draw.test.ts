import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Campaign } from '../src/config/campaigns.js'
import {
  allocationOf,
  commitDraw,
  DrawRefused,
  drawLottery,
  findDraw,
  firstComeFrontier,
  loadResults,
  markFirstComeFinal,
  releasePlace,
} from '../src/db/draws.js'
import { migrate } from '../src/db/migrate.js'
import { createPool, type Pool } from '../src/db/pool.js'
import { commitmentOf, type DrawResults, rankIds, verifyResults } from '../src/domain/draw.js'
import { createLogger } from '../src/observability/logger.js'
import { dropDatabase, sql, testConfig, testEnv } from './support/harness.js'

const past = {
  opens_at: '2026-01-01T00:00:00Z',
  closes_at: '2026-01-02T00:00:00Z',
  draw_at: '2026-01-03T00:00:00Z',
}
const lottery = (capacity: number, times = past) => ({
  title: 'A lottery',
  capacity,
  allocation: 'lottery',
  ...times,
})
const CONFIG_DOC = {
  checks: {},
  campaigns: {
    lot: lottery(1000),
    crash: lottery(1000),
    killed: lottery(1000),
    opened: lottery(10),
    unopened: {
      title: 'No opens_at',
      capacity: 5,
      allocation: 'lottery',
      closes_at: '2999-01-01T00:00:00Z',
      draw_at: '2999-01-02T00:00:00Z',
    },
    small: lottery(3),
    settle: lottery(3),
    later: lottery(3, {
      opens_at: '2997-01-01T00:00:00Z',
      closes_at: '2998-01-01T00:00:00Z',
      draw_at: '2998-01-02T00:00:00Z',
    }),
    fc: { title: 'First come', capacity: 2, allocation: 'first_come' },
    fc2: { title: 'First come, many', capacity: 7, allocation: 'first_come' },
    fc3: { title: 'First come, the intake behind', capacity: 1, allocation: 'first_come' },
    fc4: { title: 'First come, numbered in parts', capacity: 2, allocation: 'first_come' },
    plain: { title: 'Not scarce' },
  },
}
const config = testConfig(CONFIG_DOC)
const campaign = (slug: string): Campaign => config.campaigns.get(slug)!

const env = testEnv()
const url = env.DATABASE_URL
const log = createLogger({ level: 'error' })
let pool: Pool

interface Row {
  id: string
  at: number
  status?: string
}

/** Records written straight into the table (the draw's input), in the given arrival order. */
async function insertRecords(slug: string, rows: Row[]): Promise<void> {
  await pool.query(
    `INSERT INTO registrations (id, campaign, national_id_index, national_id_sealed, mobile_sealed, key_id,
                                received_at, status, verdict_at)
     SELECT t.id, $2, decode(md5(t.id::text), 'hex'), '\\x00', '\\x00', 'k1', to_timestamp(t.at / 1000.0), t.st,
            CASE WHEN t.st IN ('accepted', 'rejected') THEN now() END
     FROM unnest($1::uuid[], $3::float8[], $4::text[]) AS t(id, at, st)`,
    [rows.map((r) => r.id), slug, rows.map((r) => r.at), rows.map((r) => r.status ?? 'accepted')],
  )
}

/** `n` accepted registrations arriving 1 ms apart; their ids in arrival order. */
async function accepted(
  slug: string,
  n: number,
  base = Date.parse('2026-01-01T10:00:00Z'),
): Promise<string[]> {
  const rows = Array.from({ length: n }, (_, i) => ({ id: uuidv7({ msecs: base + i }), at: base + i }))
  await insertRecords(slug, rows)
  return rows.map((r) => r.id)
}

const allocationsDigest = async (slug: string) =>
  createHash('sha256')
    .update(
      JSON.stringify(
        await sql(
          url,
          'SELECT registration_id::text, rank, won FROM allocations WHERE campaign = $1 ORDER BY rank',
          [slug],
        ),
      ),
    )
    .digest('hex')

const CLI = ['--import', 'tsx', 'src/cli.ts']
function cli(
  args: string[],
  extra: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...CLI, ...args], {
      env: {
        ...process.env,
        DATABASE_URL: url,
        AMQP_URL: env.AMQP_URL,
        SABT_MQ_PREFIX: env.SABT_MQ_PREFIX,
        SABT_CONFIG: configFile,
        LOG_LEVEL: 'error',
        ...extra,
      },
    })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}
const dir = mkdtempSync(join(tmpdir(), 'sabt-draw-'))
const configFile = join(dir, 'sabt.json')
writeFileSync(configFile, JSON.stringify(CONFIG_DOC))

/** The intake watermark (decision 022): what the recorders say is in PostgreSQL. */
const setWatermark = (at: number) =>
  pool.query('UPDATE intake_watermark SET settled_before = $1', [new Date(at)])
/** Everything these tests insert is long in PostgreSQL (no recorder runs here to say so). */
const LONG_AFTER = Date.parse('2100-01-01T00:00:00Z')

beforeAll(async () => {
  await migrate(url, log)
  pool = createPool(url, { max: 4, log, name: 'draw-test' })
  await setWatermark(LONG_AFTER)
})
afterAll(async () => {
  await pool?.end()
  await dropDatabase(url)
})

describe('a lottery of 10,000 accepted registrations for 1,000 places', () => {
  let arrival: string[]
  let results: DrawResults
  beforeAll(async () => {
    arrival = await accepted('lot', 10_000)
    // Neither a rejected registration nor a duplicate is a participant.
    await insertRecords('lot', [
      {
        id: uuidv7({ msecs: Date.parse('2026-01-01T09:00:00Z') }),
        at: Date.parse('2026-01-01T09:00:00Z'),
        status: 'rejected',
      },
    ])
    await pool.query(
      `INSERT INTO duplicates (id, original_id, campaign, received_at) VALUES ($1, $2, 'lot', now())`,
      [uuidv7(), arrival[0]],
    )
    await commitDraw(pool, 'lot', 'test')
  })

  it('draws exactly 1,000 winners and 9,000 on the waiting list, in HMAC order', async () => {
    const s = await drawLottery(pool, campaign('lot'), 'test')
    expect(s).toMatchObject({ ran: true, participants: 10_000, winners: 1000, waitlisted: 9000 })
    results = (await loadResults(pool, 'lot'))!
    const d = (await findDraw(pool, 'lot'))!
    expect(commitmentOf(d.seed)).toBe(d.commitment)
    expect(results.participants.map((p) => p.id)).toEqual(rankIds(d.seed, arrival))
    expect(results.participants.filter((p) => p.result === 'won')).toHaveLength(1000)
    expect(results.participants.slice(0, 1000).every((p) => p.result === 'won')).toBe(true)
    expect(results.participants.slice(1000).every((p) => p.result === 'waitlisted')).toBe(true)
    // The waiting list in order: rank 1,001 is first, rank 10,000 is 9,000th.
    const at = (rank: number) => ({ id: results.participants[rank - 1]!.id, status: 'accepted' })
    expect(await allocationOf(pool, campaign('lot'), at(1))).toEqual({ state: 'won' })
    expect(await allocationOf(pool, campaign('lot'), at(1000))).toEqual({ state: 'won' })
    expect(await allocationOf(pool, campaign('lot'), at(1001))).toEqual({ state: 'waitlisted', position: 1 })
    expect(await allocationOf(pool, campaign('lot'), at(10_000))).toEqual({
      state: 'waitlisted',
      position: 9000,
    })
  })

  it('never lets a duplicate or a rejected registration take part', async () => {
    const outsiders = await sql<{ n: number }>(
      url,
      `SELECT count(*)::int AS n FROM allocations a
       WHERE NOT EXISTS (SELECT 1 FROM registrations r WHERE r.id = a.registration_id AND r.status = 'accepted')`,
    )
    expect(outsiders[0]!.n).toBe(0)
    const dup = await sql(url, `SELECT id FROM duplicates WHERE campaign = 'lot'`)
    const ids = new Set(results.participants.map((p) => p.id))
    expect(ids.has((dup[0] as { id: string }).id)).toBe(false)
  })

  it('makes winning independent of arrival (|Spearman ρ| < 0.05 over the 10,000)', () => {
    const rankOf = new Map(results.participants.map((p) => [p.id, p.rank]))
    const n = arrival.length
    let d2 = 0
    for (const [i, id] of arrival.entries()) d2 += (i + 1 - rankOf.get(id)!) ** 2
    const rho = 1 - (6 * d2) / (n * (n * n - 1))
    expect(Math.abs(rho)).toBeLessThan(0.05)
  })

  it('verifies the export, and fails it when one id, one rank or one bit of the seed changes', async () => {
    expect(verifyResults(results)).toEqual([])
    const copy = (): DrawResults => structuredClone(results)

    const id = copy()
    const p = id.participants[500]!
    p.id = `${p.id.slice(0, 35)}${p.id[35] === '0' ? '1' : '0'}`
    expect(verifyResults(id).length).toBeGreaterThan(0)

    const rank = copy()
    rank.participants[10]!.rank = 11
    rank.participants[11]!.rank = 10
    expect(verifyResults(rank).length).toBeGreaterThan(0)

    const outcome = copy()
    outcome.participants[999]!.result = 'waitlisted'
    expect(verifyResults(outcome).length).toBeGreaterThan(0)

    const seed = copy()
    const bytes = Buffer.from(seed.seed, 'hex')
    bytes[0]! ^= 1
    seed.seed = bytes.toString('hex')
    expect(verifyResults(seed)).toContainEqual(expect.stringMatching(/^commitment/))
  })

  it('sabt draw export → sabt draw verify and the standalone script agree (and catch a change)', async () => {
    const file = join(dir, 'lot.json')
    const exp = await cli(['draw', 'export', '--campaign', 'lot', '--out', file])
    expect(exp.code, exp.stderr).toBe(0)
    const ok = await cli(['draw', 'verify', '--results', file])
    expect(ok.code, ok.stderr).toBe(0)
    expect(JSON.parse(ok.stdout)).toMatchObject({ verified: true, participants: 10_000 })
    const script = (f: string) =>
      new Promise<{ code: number; out: string }>((resolve) => {
        const c = spawn(process.execPath, ['scripts/verify-draw.mjs', f, results.participants[0]!.id])
        let out = ''
        c.stdout.on('data', (d) => (out += d))
        c.on('close', (code) => resolve({ code: code ?? -1, out }))
      })
    const good = await script(file)
    expect(good.code).toBe(0)
    expect(good.out).toContain('rank 1 of 10000, won')
    expect(good.out).toContain('VERIFIED')

    const bad = structuredClone(results)
    const b = Buffer.from(bad.seed, 'hex')
    b[31]! ^= 0x80
    bad.seed = b.toString('hex')
    const badFile = join(dir, 'bad.json')
    writeFileSync(badFile, JSON.stringify(bad))
    expect((await cli(['draw', 'verify', '--results', badFile])).code).toBe(1)
    expect((await script(badFile)).code).toBe(1)
  })

  it('the Python lines of docs/draw-verify.md agree', async () => {
    const python = /```python\n([\s\S]*?)```/.exec(readFileSync('docs/draw-verify.md', 'utf8'))![1]!
    const py = (file: string) =>
      new Promise<number>((resolve) => {
        copyFileSync(file, join(dir, 'results.json'))
        const c = spawn('python3', ['-c', python], { cwd: dir })
        c.on('close', (code) => resolve(code ?? -1))
      })
    expect(await py(join(dir, 'lot.json'))).toBe(0)
    expect(await py(join(dir, 'bad.json'))).not.toBe(0)
  })

  it('runs once: a second draw changes nothing', async () => {
    const before = await allocationsDigest('lot')
    const s = await drawLottery(pool, campaign('lot'), 'again')
    expect(s.ran).toBe(false)
    expect(await allocationsDigest('lot')).toBe(before)
    expect((await findDraw(pool, 'lot'))!.drawn_by).toBe('test')
    const viaCli = await cli(['draw', 'run', '--campaign', 'lot'])
    expect(viaCli.code, viaCli.stderr).toBe(0)
    expect(JSON.parse(viaCli.stdout)).toMatchObject({ ran: false, winners: 1000 })
    expect(await allocationsDigest('lot')).toBe(before)
  })
})

// Issue 13: "once every registration is settled" — a 202'd registration not yet in PostgreSQL.
describe('sabt draw run waits for the intake', () => {
  it('refuses while the intake watermark is not past the close (a registration may still be queued or dead-lettered), then draws', async () => {
    await accepted('settle', 5)
    await commitDraw(pool, 'settle', 'test')
    // The recorders have not yet seen everything received before the close (2026-01-02T00:00Z):
    // what holds the watermark back is test/intake-watermark.test.ts's (a queued message, a dead
    // letter, a recorder holding one, the broker unreachable).
    try {
      await setWatermark(Date.parse('2026-01-01T23:59:59Z'))
      const early = await cli(['draw', 'run', '--campaign', 'settle'])
      expect(early.code, early.stderr).toBe(1)
      expect(early.stderr).toContain(
        'may still be in the intake: the intake watermark is at 2026-01-01T23:59:59.000Z',
      )
      await pool.query(`UPDATE intake_watermark SET settled_before = '-infinity'`)
      const never = await cli(['draw', 'run', '--campaign', 'settle'])
      expect(never.code, never.stderr).toBe(1)
      expect(never.stderr).toContain('the intake watermark is at its start')
      expect((await findDraw(pool, 'settle'))!.drawn_at).toBeNull()
      expect(await sql(url, `SELECT 1 FROM allocations WHERE campaign = 'settle'`)).toHaveLength(0)
    } finally {
      await setWatermark(LONG_AFTER)
    }
    const ran = await cli(['draw', 'run', '--campaign', 'settle'])
    expect(ran.code, ran.stderr).toBe(0)
    expect(JSON.parse(ran.stdout)).toMatchObject({ ran: true, participants: 5, winners: 3 })
  })
})

describe('a draw that dies midway changes nothing', () => {
  it('an error inside the transaction (after ranks were written) leaves it committed and undrawn', async () => {
    const ids = await accepted('crash', 60_000)
    await commitDraw(pool, 'crash', 'test')
    await expect(
      drawLottery(pool, campaign('crash'), 'test', {
        afterChunk: (n) => {
          if (n === 50_000) throw new Error('injected')
        },
      }),
    ).rejects.toThrow('injected')
    expect((await findDraw(pool, 'crash'))!.drawn_at).toBeNull()
    expect(await sql(url, `SELECT 1 FROM allocations WHERE campaign = 'crash'`)).toHaveLength(0)
    // And it then runs whole.
    const s = await drawLottery(pool, campaign('crash'), 'test')
    expect(s).toMatchObject({ ran: true, participants: 60_000, winners: 1000 })
    const d = (await findDraw(pool, 'crash'))!
    const r = (await loadResults(pool, 'crash'))!
    expect(r.participants.map((p) => p.id)).toEqual(rankIds(d.seed, ids))
  })

  it('a process SIGKILLed in the middle of writing ranks leaves nothing behind', async () => {
    await accepted('killed', 60_000)
    await commitDraw(pool, 'killed', 'test')
    let child: ChildProcess | null = null
    try {
      child = spawn(process.execPath, [
        '--import',
        'tsx',
        'test/support/draw-child.ts',
        url,
        JSON.stringify(CONFIG_DOC),
        'killed',
      ])
      const c = child
      await new Promise<void>((resolve, reject) => {
        c.stdout!.on('data', (d) => String(d).includes('written') && resolve())
        c.on('exit', (code) => reject(new Error(`child exited ${code}`)))
      })
      // The first ranks are written in the child's open transaction.
      const inFlight = await sql<{ n: number }>(
        url,
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'draw-child' AND state = 'idle in transaction'`,
      )
      expect(inFlight[0]!.n).toBe(1)
      c.kill('SIGKILL')
    } finally {
      child?.kill('SIGKILL')
    }
    expect((await findDraw(pool, 'killed'))!.drawn_at).toBeNull()
    expect(await sql(url, `SELECT 1 FROM allocations WHERE campaign = 'killed'`)).toHaveLength(0)
    // The dead session's lock goes with it: the draw then runs.
    const s = await drawLottery(pool, campaign('killed'), 'test')
    expect(s).toMatchObject({ ran: true, participants: 60_000 })
  })
})

describe('when the draw may run', () => {
  it('not before draw_at, not before a commitment, not while a registration is unsettled', async () => {
    await expect(drawLottery(pool, campaign('small'), 't')).rejects.toMatchObject({ reason: 'not_committed' })
    await commitDraw(pool, 'later', 't')
    await expect(drawLottery(pool, campaign('later'), 't')).rejects.toMatchObject({ reason: 'not_due' })
    await expect(drawLottery(pool, campaign('fc'), 't')).rejects.toBeInstanceOf(DrawRefused)
    const base = Date.parse('2026-01-01T10:00:00Z')
    await insertRecords('small', [{ id: uuidv7({ msecs: base }), at: base, status: 'verifying' }])
    await commitDraw(pool, 'small', 't')
    await expect(drawLottery(pool, campaign('small'), 't')).rejects.toMatchObject({ reason: 'not_settled' })
    await pool.query(`UPDATE registrations SET status = 'accepted' WHERE campaign = 'small'`)
    expect(
      await allocationOf(pool, campaign('small'), {
        id: (
          await sql<{ id: string }>(url, `SELECT id::text FROM registrations WHERE campaign = 'small'`)
        )[0]!.id,
        status: 'accepted',
      }),
    ).toEqual({ state: 'not_drawn' })
  })

  it('sabt draw commit prints only the SHA-256, before the campaign opens, once', async () => {
    const first = await cli(['draw', 'commit', '--campaign', 'later'])
    expect(first.code, first.stderr).toBe(0)
    const c = JSON.parse(first.stdout) as { commitment: string; created: boolean }
    expect(c.created).toBe(false) // committed above: the same commitment
    expect(c.commitment).toBe((await findDraw(pool, 'later'))!.commitment)
    expect(first.stdout).not.toContain((await findDraw(pool, 'later'))!.seed.toString('hex'))
    // Opened without a commitment: a seed fixed now could be chosen knowing the entrants.
    const opened = await cli(['draw', 'commit', '--campaign', 'opened'])
    expect(opened.code).toBe(1)
    expect(opened.stderr).toContain('opened at')
    expect(await findDraw(pool, 'opened')).toBeNull()
    // No opens_at: open from the start — refused once anyone registered.
    await insertRecords('unopened', [{ id: uuidv7(), at: Date.now() }])
    const entered = await cli(['draw', 'commit', '--campaign', 'unopened'])
    expect(entered.code).toBe(1)
    expect(entered.stderr).toContain('already has 1 registration')
    const refused = await cli(['draw', 'commit', '--campaign', 'fc'])
    expect(refused.code).toBe(2)
  })
})

describe('release', () => {
  it('gives a released place to exactly the next one on the waiting list, recorded with who and when', async () => {
    const ids = await accepted('small', 6, Date.parse('2026-01-01T11:00:00Z'))
    const s = await drawLottery(pool, campaign('small'), 't')
    expect(s).toMatchObject({ participants: 7, winners: 3, waitlisted: 4 })
    const r0 = (await loadResults(pool, 'small'))!
    const [w1, w2] = r0.participants.map((p) => p.id)
    const [q1, q2, q3] = r0.participants.slice(3).map((p) => p.id)
    expect(ids.length).toBe(6)

    await expect(releasePlace(pool, campaign('small'), q1!, 'op')).rejects.toMatchObject({
      reason: 'not_a_winner',
    })
    const rel = await releasePlace(pool, campaign('small'), w2!, 'alice')
    expect(rel).toMatchObject({ released: w2, promoted: q1, releasedBy: 'alice', changed: true })
    const alloc = (id: string) => allocationOf(pool, campaign('small'), { id, status: 'accepted' })
    expect(await alloc(w2!)).toEqual({ state: 'released' })
    expect(await alloc(q1!)).toEqual({ state: 'won' })
    expect(await alloc(q2!)).toEqual({ state: 'waitlisted', position: 1 })
    expect(await alloc(q3!)).toEqual({ state: 'waitlisted', position: 2 })
    // Again: nothing changes. A promoted winner can give the place up in turn (via the CLI).
    expect(await releasePlace(pool, campaign('small'), w2!, 'bob')).toMatchObject({
      promoted: q1,
      changed: false,
      releasedBy: 'alice',
    })
    const viaCli = await cli(['draw', 'release', q1!, '--by', 'carol'])
    expect(viaCli.code, viaCli.stderr).toBe(0)
    expect(JSON.parse(viaCli.stdout)).toMatchObject({ released: q1, promoted: q2, releasedBy: 'carol' })
    expect(await alloc(w1!)).toEqual({ state: 'won' })
    expect(await alloc(q2!)).toEqual({ state: 'won' })
    expect(await alloc(q3!)).toEqual({ state: 'waitlisted', position: 1 }) // two promoted before it
    const history = await sql(
      url,
      `SELECT released_by, released_at FROM releases WHERE campaign = 'small' ORDER BY id`,
    )
    expect(history.map((h) => (h as { released_by: string }).released_by)).toEqual(['alice', 'carol'])
    // The results still verify, releases replayed; a forged release does not.
    const r1 = (await loadResults(pool, 'small'))!
    expect(r1.releases).toHaveLength(2)
    expect(verifyResults(r1)).toEqual([])
    const forged = structuredClone(r1)
    forged.releases[0]!.promoted = q3!
    expect(verifyResults(forged).length).toBeGreaterThan(0)
  })
})

describe('first_come', () => {
  const t = (s: number) => Date.parse('2026-01-01T10:00:00Z') + s * 1000
  const early = { id: uuidv7({ msecs: t(1) }), at: t(1), status: 'verifying' }
  const rejectedFirst = { id: uuidv7({ msecs: t(0) }), at: t(0), status: 'rejected' }
  const b = { id: uuidv7({ msecs: t(2) }), at: t(2) }
  const c = { id: uuidv7({ msecs: t(3) }), at: t(3) }
  // Recorded late (another recorder committed the later submission first): its earlier twin,
  // a duplicate received at t(1.5), gives it that place.
  const late = { id: uuidv7({ msecs: t(9) }), at: t(9) }
  const alloc = (id: string, status = 'accepted') => allocationOf(pool, campaign('fc'), { id, status })
  /** One finality sweep (what the checker's FinalitySweeper does): places final below the frontier numbered. */
  const sweep = async (slug: string) => {
    const frontier = await firstComeFrontier(pool, slug)
    return frontier ? markFirstComeFinal(pool, campaign(slug), frontier) : []
  }

  it('ranks by the gateway receive time: an early arrival verified last keeps its place; rejected and duplicates never win', async () => {
    await insertRecords('fc', [early, rejectedFirst, b, c, late])
    await pool.query(
      `INSERT INTO duplicates (id, original_id, campaign, received_at) VALUES ($1, $2, 'fc', $3)`,
      [uuidv7({ msecs: t(1.5) }), late.id, new Date(t(1.5))],
    )
    // While the earliest is being checked, everything after it is pending.
    expect(await sweep('fc')).toEqual([])
    expect(await alloc(early.id, 'verifying')).toEqual({ state: 'pending' })
    expect(await alloc(b.id)).toEqual({ state: 'pending' })
    // Verified last, accepted: it is first.
    await pool.query(`UPDATE registrations SET status = 'accepted' WHERE id = $1`, [early.id])
    expect(await alloc(early.id)).toEqual({ state: 'pending' }) // final at the next sweep
    expect((await sweep('fc')).sort()).toEqual([early.id, b.id, c.id, late.id].sort())
    expect(await alloc(early.id)).toEqual({ state: 'won' })
    expect(await alloc(late.id)).toEqual({ state: 'won' })
    expect(await alloc(b.id)).toEqual({ state: 'waitlisted', position: 1 })
    expect(await alloc(c.id)).toEqual({ state: 'waitlisted', position: 2 })
    expect(await alloc(rejectedFirst.id, 'rejected')).toBeNull()
    expect(await allocationOf(pool, campaign('plain'), { id: b.id, status: 'accepted' })).toBeNull()
  })

  it('release gives the place to the next in arrival order, once everything is settled', async () => {
    // Received after every numbered place, still being checked: the places and the first on the
    // waiting list are final all the same. (One still unsettled before them: the fc3 test.)
    const straggler = { id: uuidv7({ msecs: t(20) }), at: t(20), status: 'verifying' }
    await insertRecords('fc', [straggler])
    await expect(releasePlace(pool, campaign('fc'), c.id, 'op')).rejects.toMatchObject({
      reason: 'not_a_winner',
    })
    expect(await releasePlace(pool, campaign('fc'), late.id, 'dana')).toMatchObject({
      promoted: b.id,
      changed: true,
    })
    expect(await alloc(late.id)).toEqual({ state: 'released' })
    expect(await alloc(early.id)).toEqual({ state: 'won' })
    expect(await alloc(b.id)).toEqual({ state: 'won' })
    expect(await alloc(c.id)).toEqual({ state: 'waitlisted', position: 1 })
    expect(await releasePlace(pool, campaign('fc'), late.id, 'eve')).toMatchObject({
      changed: false,
      releasedBy: 'dana',
    })
    const viaCli = await cli(['draw', 'release', early.id, '--by', 'frank'])
    expect(viaCli.code, viaCli.stderr).toBe(0)
    expect(JSON.parse(viaCli.stdout)).toMatchObject({ promoted: c.id, campaign: 'fc' })
    expect(await alloc(c.id)).toEqual({ state: 'won' })
  })

  it('agrees with a model of the rule over random arrivals, ties, duplicates, rejections and releases', async () => {
    const base = Date.parse('2026-01-01T10:00:00Z')
    let seed = 13
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const rows = Array.from({ length: 80 }, () => {
      const at = base + rnd(40) * 1000 // many ties
      return { id: uuidv7({ msecs: at + rnd(1000) }), at, status: rnd(5) === 0 ? 'rejected' : 'accepted' }
    })
    await insertRecords('fc2', rows)
    const dups: { original: string; at: number }[] = []
    for (const r of rows) if (rnd(4) === 0) dups.push({ original: r.id, at: base + rnd(40) * 1000 })
    for (const d of dups)
      await pool.query(
        `INSERT INTO duplicates (id, original_id, campaign, received_at) VALUES ($1, $2, 'fc2', $3)`,
        [uuidv7(), d.original, new Date(d.at)],
      )
    const key = (r: (typeof rows)[number]) =>
      Math.min(r.at, ...dups.filter((d) => d.original === r.id).map((d) => d.at))
    const order = () =>
      rows
        .filter((r) => r.status === 'accepted' && !released.has(r.id))
        .sort((a, b) => key(a) - key(b) || (a.id < b.id ? -1 : 1))
    const released = new Set<string>()
    let swept = false
    const check = async () => {
      if (!swept) swept = (await sweep('fc2')).length > 0
      const o = order()
      for (const [i, r] of o.entries())
        expect(await allocationOf(pool, campaign('fc2'), { id: r.id, status: 'accepted' })).toEqual(
          i < 7 ? { state: 'won' } : { state: 'waitlisted', position: i + 1 - 7 },
        )
    }
    await check()
    for (let k = 0; k < 3; k++) {
      const winner = order()[rnd(7)]!
      const next = order()[7]!
      expect(await releasePlace(pool, campaign('fc2'), winner.id, 'model')).toMatchObject({
        promoted: next.id,
      })
      released.add(winner.id)
      await check()
    }
  })

  it('is final only below the intake watermark and once nothing earlier is unsettled or failed; each place is told once', async () => {
    const a = { id: uuidv7({ msecs: t(100) }), at: t(100) }
    const failed = { id: uuidv7({ msecs: t(101) }), at: t(101), status: 'failed' }
    const b2 = { id: uuidv7({ msecs: t(102) }), at: t(102) }
    await insertRecords('fc3', [a, failed, b2])
    const al = (id: string) => allocationOf(pool, campaign('fc3'), { id, status: 'accepted' })
    // Registrations received after t(100.5) may still be in an intake queue: b2's place may change.
    await setWatermark(t(100.5))
    expect(await al(a.id)).toEqual({ state: 'pending' }) // until a sweep numbers it
    const first = (await firstComeFrontier(pool, 'fc3'))!
    expect(first.getTime()).toBe(t(100.5))
    // The finality sweep numbers a final place and owes it once.
    expect(await markFirstComeFinal(pool, campaign('fc3'), first)).toEqual([a.id])
    expect(await markFirstComeFinal(pool, campaign('fc3'), first)).toEqual([])
    expect(await al(a.id)).toEqual({ state: 'won' })
    expect(await al(b2.id)).toEqual({ state: 'pending' })
    await expect(releasePlace(pool, campaign('fc3'), a.id, 'op')).rejects.toMatchObject({
      reason: 'not_settled',
    })
    // The intake caught up, but a failed record before b2 may still be accepted by a replay.
    await setWatermark(t(200))
    expect(await al(b2.id)).toEqual({ state: 'pending' })
    const frontier = (await firstComeFrontier(pool, 'fc3'))!
    expect(frontier.getTime()).toBe(t(101))
    // b2 not yet.
    expect(await markFirstComeFinal(pool, campaign('fc3'), frontier)).toEqual([])
    await pool.query(`UPDATE registrations SET status = 'rejected' WHERE id = $1`, [failed.id])
    const next = (await firstComeFrontier(pool, 'fc3', frontier))!
    expect(next.getTime()).toBe(t(200))
    expect(await markFirstComeFinal(pool, campaign('fc3'), next)).toEqual([b2.id])
    expect(await al(b2.id)).toEqual({ state: 'waitlisted', position: 1 })
    const told = await sql<{ id: string }>(
      url,
      `SELECT id::text FROM registrations WHERE campaign = 'fc3' AND allocation_told_at IS NOT NULL ORDER BY id`,
    )
    expect(told.map((r) => r.id)).toEqual([a.id, b2.id])
    // Now the waiting list is final: a release promotes b2.
    expect(await releasePlace(pool, campaign('fc3'), a.id, 'op')).toMatchObject({ promoted: b2.id })
  })

  it('numbers the final places a few at a time, in place order, each once, with two sweeps at once', async () => {
    const base = t(300)
    const rows = Array.from({ length: 9 }, (_, i) => ({
      id: uuidv7({ msecs: base + (i % 3) * 1000 }),
      at: base + (i % 3) * 1000,
    }))
    await insertRecords('fc4', rows)
    // A duplicate received first gives the last record the first place.
    const last = rows.reduce((a, b) => (a.at > b.at || (a.at === b.at && a.id > b.id) ? a : b))
    await pool.query(
      `INSERT INTO duplicates (id, original_id, campaign, received_at) VALUES ($1, $2, 'fc4', $3)`,
      [uuidv7(), last.id, new Date(base - 500)],
    )
    await setWatermark(t(1000))
    const frontier = (await firstComeFrontier(pool, 'fc4'))!
    // Two sweeps at once (two checkers), four places a transaction: each place numbered and owed once.
    const [one, two] = await Promise.all([
      markFirstComeFinal(pool, campaign('fc4'), frontier, 4),
      markFirstComeFinal(pool, campaign('fc4'), frontier, 4),
    ])
    expect([...one!, ...two!].sort()).toEqual(rows.map((r) => r.id).sort())
    const expected = [
      last,
      ...rows.filter((r) => r !== last).sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1)),
    ]
    const ranked = await sql<{ id: string; place_rank: number }>(
      url,
      `SELECT id::text, place_rank FROM registrations WHERE campaign = 'fc4' ORDER BY place_rank`,
    )
    expect(ranked).toEqual(expected.map((r, i) => ({ id: r.id, place_rank: i + 1 })))
    expect(await allocationOf(pool, campaign('fc4'), { id: last.id, status: 'accepted' })).toEqual({
      state: 'won',
    })
    expect(await allocationOf(pool, campaign('fc4'), { id: expected[8]!.id, status: 'accepted' })).toEqual({
      state: 'waitlisted',
      position: 7,
    })
    expect(await markFirstComeFinal(pool, campaign('fc4'), frontier, 4)).toEqual([])
    // An unsettled record holds the frontier at its earliest submission: a duplicate received first.
    const open = { id: uuidv7({ msecs: t(600) }), at: t(600), status: 'verifying' }
    await insertRecords('fc4', [open])
    await pool.query(
      `INSERT INTO duplicates (id, original_id, campaign, received_at) VALUES ($1, $2, 'fc4', $3)`,
      [uuidv7(), open.id, new Date(t(550))],
    )
    expect((await firstComeFrontier(pool, 'fc4'))!.getTime()).toBe(t(550))
    expect((await firstComeFrontier(pool, 'fc4', new Date(t(500))))!.getTime()).toBe(t(550))
    await pool.query(`UPDATE registrations SET status = 'rejected' WHERE id = $1`, [open.id])
    expect((await firstComeFrontier(pool, 'fc4'))!.getTime()).toBe(t(1000)) // the watermark
  })
})
