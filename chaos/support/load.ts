import { Pool } from 'undici'
import { withCheckDigit } from '../../src/domain/national-id.js'

export interface Sent {
  person: string
  status: number | 'error'
  id?: string
  at: number
}

let counter = Math.floor(Math.random() * 1e8)
function person(): string {
  counter = (counter + 1) % 900_000_000
  return withCheckDigit(String(100_000_000 + counter).padStart(9, '0'))
}

/**
 * Steady open-loop load over loopback: requests start on schedule (rate per second) whatever the
 * answers, spread over the gateways, each a distinct person. Every answer is kept: the 202'd ids
 * are the promise under test.
 */
export class Load {
  readonly sent: Sent[] = []
  readonly #pools: Pool[]
  #stop = false
  #running: Promise<void> | null = null
  #inFlight = new Set<Promise<void>>()

  constructor(
    gateways: string[],
    readonly rate: number,
  ) {
    this.#pools = gateways.map(
      (g) => new Pool(g, { connections: 64, pipelining: 1, headersTimeout: 15_000, bodyTimeout: 15_000 }),
    )
  }

  start(): void {
    this.#running = this.#loop()
  }

  async #loop(): Promise<void> {
    const started = performance.now()
    let n = 0
    while (!this.#stop) {
      const due = started + (n * 1000) / this.rate
      const wait = due - performance.now()
      if (wait > 1) await new Promise((r) => setTimeout(r, wait))
      if (this.#stop) break
      // Bounded: a wedged system must not make the driver itself the thing that runs out of memory.
      if (this.#inFlight.size < 4000) {
        const p = this.#one(this.#pools[n % this.#pools.length]!)
        this.#inFlight.add(p)
        p.finally(() => this.#inFlight.delete(p))
      }
      n++
    }
  }

  async #one(pool: Pool): Promise<void> {
    const nid = person()
    const body = JSON.stringify({
      campaign: 'chaos',
      national_id: nid,
      mobile: `0912${nid.slice(3, 10)}`,
      first_name: 'آزمون',
      last_name: 'پایداری',
      birth_date: '1990-01-01',
    })
    const at = Date.now()
    try {
      const res = await pool.request({
        path: '/v1/registrations',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      })
      const text = await res.body.text()
      const rec: Sent = { person: nid, status: res.statusCode, at }
      if (res.statusCode === 202) rec.id = (JSON.parse(text) as { id: string }).id
      this.sent.push(rec)
    } catch {
      this.sent.push({ person: nid, status: 'error', at })
    }
  }

  async stop(): Promise<void> {
    this.#stop = true
    await this.#running
    await Promise.allSettled([...this.#inFlight])
    await Promise.all(this.#pools.map((p) => p.close()))
  }

  accepted(): Sent[] {
    return this.sent.filter((s) => s.status === 202)
  }

  /** The first 202 after time t (ms epoch): when intake recovered. */
  firstAcceptedAfter(t: number): number | null {
    let best: number | null = null
    for (const s of this.sent)
      if (s.status === 202 && s.at >= t && (best === null || s.at < best)) best = s.at
    return best
  }
}
