import { createHash, createHmac, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'

/**
 * Proof-of-work solutions for the load generator: challenges signed with the gateway's
 * SABT_POW_SECRET for one campaign, each written with its answer, as the ALTCHA widget sends it
 * (base64 JSON in X-Altcha). The bench makes each challenge as altcha-lib's `createChallenge` does
 * (salt with the campaign and expiry, SHA-256 of salt + number, its HMAC) knowing the secret number
 * instead of searching for it: what the gateway spends verifying one — a SHA-256, an HMAC, the
 * single-use check — is the same, and the figure is the server's cost, not the citizen's. With
 * node:crypto, not the library: its WebCrypto path takes 225 µs a challenge (45 s for the 200,000
 * of one run). A solution made wrong is refused by the gateway and shows in the "not 2xx" column.
 * One file per wrk thread (`<prefix>.<thread>`, one solution per line).
 */
export async function writeSolutions(o: {
  secret: string
  campaign: string
  count: number
  prefix: string
  threads: number
  maxNumber: number
}): Promise<void> {
  const files = Array.from({ length: o.threads }, (_, t) => createWriteStream(`${o.prefix}.${t}`))
  const expires = Math.floor(Date.now() / 1000) + 3600
  const params = new URLSearchParams({ campaign: o.campaign, expires: String(expires) }).toString()
  for (let i = 0; i < o.count; i++) {
    const number = 1 + (i % o.maxNumber)
    const salt = `${randomBytes(12).toString('hex')}?${params}&`
    const challenge = createHash('sha256').update(`${salt}${number}`).digest('hex')
    const signature = createHmac('sha256', o.secret).update(challenge).digest('hex')
    const payload = Buffer.from(
      JSON.stringify({ algorithm: 'SHA-256', challenge, number, salt, signature }),
    ).toString('base64')
    const f = files[i % o.threads]!
    if (!f.write(`${payload}\n`)) await once(f, 'drain')
  }
  await Promise.all(files.map((f) => new Promise<void>((r) => f.end(r))))
}
