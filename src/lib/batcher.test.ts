import { describe, expect, it } from 'vitest'
import { Batcher, type FlushReason } from './batcher.js'

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms))

describe('Batcher', () => {
  it('flushes at the size, says so, and keeps what arrived meanwhile for the next batch', async () => {
    const flushed: [number[], FlushReason][] = []
    let release!: () => void
    const b = new Batcher<number>({ size: 3, maxWaitMs: 10_000 }, async (items, reason) => {
      flushed.push([items, reason])
      if (flushed.length === 1) await new Promise<void>((r) => (release = r))
    })
    for (const n of [1, 2, 3, 4, 5, 6, 7]) b.add(n)
    expect(flushed).toEqual([[[1, 2, 3], 'size']])
    expect(b.busy).toBe(true)
    release()
    await tick()
    expect(flushed.slice(1)).toEqual([[[4, 5, 6], 'size']])
    expect(b.pending).toBe(1)
    await b.drain()
    expect(flushed.at(-1)).toEqual([[7], 'shutdown'])
  })

  it('flushes a partial batch when its first item has waited maxWaitMs', async () => {
    const flushed: [number[], FlushReason][] = []
    const b = new Batcher<number>({ size: 100, maxWaitMs: 20 }, async (items, reason) => {
      flushed.push([items, reason])
    })
    b.add(1)
    b.add(2)
    await tick(5)
    expect(flushed).toEqual([])
    await tick(40)
    expect(flushed).toEqual([[[1, 2], 'time']])
  })

  it('a flush that throws is told to onError, never an unhandled rejection, and the next batch still flushes', async () => {
    const errors: [string, number[]][] = []
    const flushed: number[][] = []
    const b = new Batcher<number>(
      { size: 2, maxWaitMs: 5, onError: (err, items) => errors.push([(err as Error).message, items]) },
      async (items) => {
        if (items.includes(1)) throw new Error('boom')
        flushed.push(items)
      },
    )
    b.add(1)
    b.add(2)
    b.add(3)
    b.add(4)
    await b.drain()
    expect(errors).toEqual([['boom', [1, 2]]])
    expect(flushed).toEqual([[3, 4]])
  })
})
