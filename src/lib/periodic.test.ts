import { describe, expect, it } from 'vitest'
import { groupBy, Periodic } from './periodic.js'

describe('Periodic', () => {
  it('runs one job at a time: a run asked for while one is going joins it', async () => {
    let started = 0
    let release!: () => void
    const p = new Periodic(
      async () => {
        started++
        await new Promise<void>((r) => {
          release = r
        })
        return started
      },
      60_000,
      () => {},
    )
    const a = p.run()
    const b = p.run()
    expect(started).toBe(1)
    release()
    expect(await a).toBe(1)
    expect(await b).toBe(1)
    const c = p.run() // the first run has ended: a new one starts
    expect(started).toBe(2)
    release()
    expect(await c).toBe(2)
  })

  it('ticks until stopped, and stop waits for the run in progress; a failing run is reported, not thrown', async () => {
    const errors: unknown[] = []
    let runs = 0
    let finished = 0
    const p = new Periodic(
      async () => {
        runs++
        await new Promise((r) => setTimeout(r, 30))
        finished++
        if (runs === 1) throw new Error('first run fails')
        return runs
      },
      10,
      (err) => errors.push(err),
    )
    p.start()
    p.start() // a second start changes nothing
    for (const until = Date.now() + 5000; runs < 2 && Date.now() < until; )
      await new Promise((r) => setTimeout(r, 10))
    await p.stop()
    expect(runs).toBeGreaterThanOrEqual(2)
    expect(finished).toBe(runs) // nothing left running after stop
    expect(errors).toHaveLength(1)
    const after = runs
    await new Promise((r) => setTimeout(r, 50))
    expect(runs).toBe(after)
  })
})

describe('groupBy', () => {
  it('groups in first-seen order', () => {
    const rows = [
      { c: 'b', id: '1' },
      { c: 'a', id: '2' },
      { c: 'b', id: '3' },
    ]
    expect([
      ...groupBy(
        rows,
        (r) => r.c,
        (r) => r.id,
      ),
    ]).toEqual([
      ['b', ['1', '3']],
      ['a', ['2']],
    ])
  })
})
