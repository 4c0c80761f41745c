import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dropDatabase, PG_ADMIN_URL, sql, testEnv } from '../../../test/support/harness.js'
import { migrate } from '../../db/migrate.js'
import { createPool, type Pool } from '../../db/pool.js'
import { TokenBucket } from '../../lib/token-bucket.js'
import { createLogger } from '../../observability/logger.js'
import { SharedRate } from './shared-rate.js'

// The shared schedule (decision 013) against the real PostgreSQL: several "checker processes"
// (SharedRate instances on their own pools) taking as fast as they can stay within the one rate.
const log = createLogger({ level: 'silent' })

/** Drives `rates` as hard as they will go for `ms`; returns every call's start time. */
async function drive(rates: SharedRate[], ms: number): Promise<number[]> {
  const starts: number[] = []
  const until = Date.now() + ms
  await Promise.all(
    rates.map(async (r) => {
      while (Date.now() < until) {
        const wait = await r.take()
        if (wait === 0) starts.push(Date.now())
        else await new Promise((res) => setTimeout(res, Math.min(wait, until - Date.now() + 1)))
      }
    }),
  )
  return starts.sort((a, b) => a - b)
}

/** The most calls that started in any window of `windowMs`. */
function maxInWindow(starts: number[], windowMs: number): number {
  let most = 0
  for (let i = 0, j = 0; i < starts.length; i++) {
    while (starts[i]! - starts[j]! >= windowMs) j++
    most = Math.max(most, i - j + 1)
  }
  return most
}

describe('SharedRate', () => {
  const env = testEnv()
  const pools: Pool[] = []
  beforeAll(async () => {
    await migrate(env.DATABASE_URL, log)
  })
  afterAll(async () => {
    for (const p of pools) await p.end()
    await dropDatabase(env.DATABASE_URL)
  })
  const pool = () => {
    const p = createPool(env.DATABASE_URL, { max: 2, log, name: 'test-rate' })
    pools.push(p)
    return p
  }

  it('three processes at 40/s together start at most the rate plus one slice in any second', async () => {
    const rates = [0, 1, 2].map(() => new SharedRate(pool(), 'identity', new TokenBucket(40)))
    const starts = await drive(rates, 3000)
    // Each lease is 250 ms of the rate (10 calls); a window can straddle at most one more slice.
    expect(maxInWindow(starts, 1000)).toBeLessThanOrEqual(40 + 10)
    // …and the rate is used: the three together are not held back to a third of it.
    expect(starts.length).toBeGreaterThanOrEqual(40 * 2.5)
    const [row] = await sql<{ key: string }>(env.DATABASE_URL, 'SELECT key FROM rate_schedules')
    expect(row!.key).toBe('check:identity')
  })

  it('keeps separate checks apart, and an idle process does not hoard the rate', async () => {
    const a = new SharedRate(pool(), 'mobile', new TokenBucket(20))
    const b = new SharedRate(pool(), 'eligibility', new TokenBucket(20))
    const [sa, sb] = await Promise.all([drive([a], 1500), drive([b], 1500)])
    expect(sa.length).toBeGreaterThanOrEqual(20)
    expect(sb.length).toBeGreaterThanOrEqual(20)
    // One lease, then nothing: the schedule is at most one slice ahead, so a newcomer starts at once.
    const idle = new SharedRate(pool(), 'mobile', new TokenBucket(20))
    await idle.take()
    const late = new SharedRate(pool(), 'mobile', new TokenBucket(20))
    const first = Date.now()
    while ((await late.take()) !== 0) await new Promise((r) => setTimeout(r, 5))
    expect(Date.now() - first).toBeLessThan(1000)
  })

  it('a database that is gone is an error the caller sees (the checker parks the record)', async () => {
    const gone = new pg.Pool({
      connectionString: `${PG_ADMIN_URL.replace(/\/[^/]*$/, '')}/no_such_db_${Date.now()}`,
    })
    pools.push(gone)
    await expect(new SharedRate(gone, 'identity', new TokenBucket(10)).take()).rejects.toThrow()
  })
})
