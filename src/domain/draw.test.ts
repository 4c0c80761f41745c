import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { commitmentOf, drawKey, participantsDigest, RESULTS_FORMAT, rankIds, verifyResults } from './draw.js'

const uuid = fc.uuid().map((u) => u.toLowerCase())

function results(seed: Buffer, ids: string[], capacity: number) {
  const order = rankIds(seed, ids)
  return {
    format: RESULTS_FORMAT,
    campaign: 'c',
    capacity,
    commitment: commitmentOf(seed),
    seed: seed.toString('hex'),
    drawn_at: new Date(0).toISOString(),
    participants_sha256: participantsDigest(ids),
    ranking: '',
    participants: order.map((id, i) => ({ id, rank: i + 1, result: i < capacity ? 'won' : 'waitlisted' })),
    releases: [],
  }
}

describe('the draw', () => {
  it('keys a registration by HMAC-SHA256(seed, lowercase id)', () => {
    const seed = Buffer.alloc(32, 7)
    const id = '0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b'
    expect(drawKey(seed, id.toUpperCase())).toBe(createHmac('sha256', seed).update(id).digest('hex'))
  })

  it('ranks the same whatever order the ids come in, and every honest result verifies', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uniqueArray(uuid, { maxLength: 60 }),
        fc.integer({ min: 1, max: 80 }),
        (s, ids, cap) => {
          const seed = Buffer.from(s)
          expect(rankIds(seed, [...ids].reverse())).toEqual(rankIds(seed, ids))
          expect(verifyResults(results(seed, ids, cap))).toEqual([])
        },
      ),
    )
  })

  it('fails a result whose seed, an id or a rank was changed', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uniqueArray(uuid, { minLength: 2, maxLength: 40 }),
        fc.nat(),
        (s, ids, k) => {
          const seed = Buffer.from(s)
          const r = results(seed, ids, 1)
          const i = k % ids.length
          const bit = structuredClone(r)
          const b = Buffer.from(bit.seed, 'hex')
          b[k % 32]! ^= 1 << (k % 8)
          bit.seed = b.toString('hex')
          expect(verifyResults(bit).length).toBeGreaterThan(0)
          const id = structuredClone(r)
          const p = id.participants[i]!
          p.id = `${p.id.slice(0, 35)}${p.id[35] === 'a' ? 'b' : 'a'}`
          expect(verifyResults(id).length).toBeGreaterThan(0)
          const rank = structuredClone(r)
          rank.participants[i]!.rank = rank.participants[i]!.rank === 1 ? 2 : 1
          expect(verifyResults(rank).length).toBeGreaterThan(0)
        },
      ),
    )
  })
})
