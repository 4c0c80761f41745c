#!/usr/bin/env node
// Checks a Sabt lottery's published results without Sabt: Node.js 18 or later, nothing to install.
//   node verify-draw.mjs results.json [your-registration-id]
// Exit 0: the results are the honest draw of the committed seed over the listed ids. 1: they are not.
import { createHash, createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'

const [file, mine] = process.argv.slice(2)
if (!file) {
  console.error('usage: node verify-draw.mjs results.json [registration-id]')
  process.exit(2)
}
const doc = JSON.parse(readFileSync(file, 'utf8'))
const problems = []
const sha256 = (data) => createHash('sha256').update(data).digest('hex')

// 1. The seed revealed now is the one committed before the campaign opened.
const seed = Buffer.from(doc.seed, 'hex')
if (sha256(seed) !== doc.commitment) problems.push('the SHA-256 of the seed is not the commitment')

// 2. The list of participants is the one the draw ran over.
const ids = doc.participants.map((p) => p.id)
if (sha256([...ids].sort().join('\n')) !== doc.participants_sha256)
  problems.push('participants_sha256 does not match the ids listed')
if (new Set(ids).size !== ids.length) problems.push('an id is listed twice')

// 3. Rank = position of HMAC-SHA256(seed, id) in ascending order; the first `capacity` win.
const order = ids
  .map((id) => ({ id, key: createHmac('sha256', seed).update(id).digest('hex') }))
  .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : 1))
const listed = new Map(doc.participants.map((p) => [p.id, p]))
order.forEach(({ id }, i) => {
  const p = listed.get(id)
  const result = i + 1 <= doc.capacity ? 'won' : 'waitlisted'
  if (p.rank !== i + 1 || p.result !== result)
    problems.push(`${id}: listed rank ${p.rank} ${p.result}, recomputed rank ${i + 1} ${result}`)
})

// 4. Every release gave the place to the first on the waiting list.
const holding = new Set(order.slice(0, doc.capacity).map((e) => e.id))
let next = doc.capacity
for (const r of doc.releases ?? []) {
  if (!holding.delete(r.released)) problems.push(`release of ${r.released}: it held no place`)
  const expected = order[next]?.id ?? null
  if (r.promoted !== expected)
    problems.push(`release of ${r.released}: promoted ${r.promoted}, expected ${expected}`)
  if (expected) {
    holding.add(expected)
    next++
  }
}

if (mine) {
  const p = listed.get(mine.toLowerCase())
  console.log(
    p
      ? `${p.id}: rank ${p.rank} of ${ids.length}, ${p.result} in the draw`
      : `${mine}: not among the participants`,
  )
}
for (const p of problems.slice(0, 20)) console.log(`NOT VERIFIED: ${p}`)
if (problems.length === 0)
  console.log(
    `VERIFIED: ${doc.campaign}, ${ids.length} participants, ${Math.min(doc.capacity, ids.length)} winners`,
  )
process.exit(problems.length === 0 ? 0 : 1)
