import { createHash, createHmac } from 'node:crypto'

/**
 * A lottery anyone can check (decision 019). Pure: the same functions rank the draw inside Sabt
 * and verify a published results file (`sabt draw verify`; docs/draw-verify.md has a standalone
 * script that does the same without Sabt).
 *
 * - commitment: hex SHA-256 of the seed's bytes, published before the campaign opens.
 * - draw key of a registration: HMAC-SHA256(key = seed bytes, message = its id as lowercase text).
 * - rank: position (1 = first) of the draw keys sorted ascending by bytes (= by lowercase hex).
 * - the first `capacity` ranks win; the rest are the waiting list, in rank order.
 * - participants_sha256: hex SHA-256 of the participants' ids, sorted, joined by "\n" — binds the
 *   list the draw ran over, shown on the campaign's public page once drawn.
 */

export const RESULTS_FORMAT = 'sabt-draw-results/1'
export const RANKING_RULE =
  'rank = position of HMAC-SHA256(key = seed bytes, message = registration id as lowercase text) sorted ascending; the first `capacity` win'

export interface DrawParticipant {
  id: string
  rank: number
  result: 'won' | 'waitlisted'
}

export interface DrawRelease {
  released: string
  /** The first on the waiting list at the time, or null when it was empty. */
  promoted: string | null
  at: string
}

export interface DrawResults {
  format: typeof RESULTS_FORMAT
  campaign: string
  capacity: number
  commitment: string
  seed: string
  drawn_at: string
  participants_sha256: string
  ranking: string
  participants: DrawParticipant[]
  releases: DrawRelease[]
}

export function commitmentOf(seed: Buffer): string {
  return createHash('sha256').update(seed).digest('hex')
}

export function drawKey(seed: Buffer, id: string): string {
  return createHmac('sha256', seed).update(id.toLowerCase()).digest('hex')
}

export function participantsDigest(ids: readonly string[]): string {
  const sorted = ids.map((i) => i.toLowerCase()).sort()
  return createHash('sha256').update(sorted.join('\n')).digest('hex')
}

/** The ids in draw order (rank 1 first). Ties (never seen: 256-bit keys) fall back to the id. */
export function rankIds(seed: Buffer, ids: readonly string[]): string[] {
  const keyed = new Array<{ k: string; id: string }>(ids.length)
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!.toLowerCase()
    keyed[i] = { k: drawKey(seed, id), id }
  }
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return keyed.map((e) => e.id)
}

const HEX64 = /^[0-9a-f]{64}$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/**
 * Every reason `doc` is not the honest result of its draw (empty: it is). Recomputes the ranking
 * from the seed and the ids alone, the commitment from the seed, and replays the releases: each
 * must give up a place that was held and promote the first on the waiting list.
 */
export function verifyResults(doc: unknown, limit = 20): string[] {
  const problems: string[] = []
  const fail = (p: string) => {
    if (problems.length < limit) problems.push(p)
  }
  if (doc === null || typeof doc !== 'object') return ['not a results document (an object)']
  const d = doc as Partial<DrawResults>
  if (d.format !== RESULTS_FORMAT) fail(`format: expected ${RESULTS_FORMAT}`)
  if (typeof d.seed !== 'string' || !/^([0-9a-f]{2})+$/.test(d.seed)) return [...problems, 'seed: not hex']
  if (typeof d.commitment !== 'string' || !HEX64.test(d.commitment))
    return [...problems, 'commitment: not a hex SHA-256']
  if (!Number.isInteger(d.capacity) || (d.capacity as number) < 1)
    return [...problems, 'capacity: not a positive integer']
  if (!Array.isArray(d.participants)) return [...problems, 'participants: not a list']
  const seed = Buffer.from(d.seed, 'hex')
  if (commitmentOf(seed) !== d.commitment)
    fail('commitment: SHA-256 of the seed differs (the seed is not the one committed)')

  const ids: string[] = []
  const given = new Map<string, DrawParticipant>()
  for (const [i, p] of d.participants.entries()) {
    if (!p || typeof p.id !== 'string' || !UUID.test(p.id)) {
      fail(`participants.${i}.id: not a lowercase UUID`)
      continue
    }
    if (given.has(p.id)) fail(`participants.${i}.id: ${p.id} listed twice`)
    given.set(p.id, p)
    ids.push(p.id)
  }
  if (typeof d.participants_sha256 === 'string' && participantsDigest(ids) !== d.participants_sha256)
    fail('participants_sha256: the ids listed are not the ones the draw ran over')
  else if (typeof d.participants_sha256 !== 'string') fail('participants_sha256: missing')

  const order = rankIds(seed, ids)
  const capacity = d.capacity as number
  for (const [i, id] of order.entries()) {
    const p = given.get(id)!
    const rank = i + 1
    if (p.rank !== rank) fail(`${id}: rank ${p.rank} listed, ${rank} recomputed`)
    const result = rank <= capacity ? 'won' : 'waitlisted'
    if (p.result !== result) fail(`${id}: ${p.result} listed, ${result} recomputed (rank ${rank})`)
  }

  // Replay the releases over the draw's outcome.
  const holding = new Set(order.slice(0, capacity))
  let next = capacity // index in `order` of the first on the waiting list
  for (const [i, r] of (d.releases ?? []).entries()) {
    if (!r || !holding.has(r.released)) {
      fail(`releases.${i}: ${r?.released} did not hold a place`)
      continue
    }
    holding.delete(r.released)
    const expected = order[next] ?? null
    if (r.promoted !== expected)
      fail(`releases.${i}: promoted ${r.promoted}, the first on the waiting list was ${expected}`)
    if (expected) {
      holding.add(expected)
      next++
    }
  }
  return problems
}
