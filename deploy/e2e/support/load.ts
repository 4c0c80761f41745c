import { Pool } from 'undici'
import { withCheckDigit } from '../../../src/domain/national-id.js'

export interface Sent {
  person: string
  /** HTTP status, or 'error' when the connection failed (a gateway killed under it). */
  status: number | 'error'
  id?: string
  /** When the request started and when its answer came (ms epoch). */
  at: number
  end: number
}

let counter = Math.floor(Math.random() * 8e8)
/** A distinct, valid national id per call: every simulated person submits once. */
export function person(): string {
  counter = (counter + 1) % 900_000_000
  return withCheckDigit(String(100_000_000 + counter).padStart(9, '0'))
}

export function registration(nid: string, campaign = 'demo'): Record<string, string> {
  return {
    campaign,
    national_id: nid,
    mobile: `0912${nid.slice(3, 10)}`,
    first_name: 'آزمون',
    last_name: 'استقرار',
    birth_date: '1990-01-01',
  }
}

/**
 * Closed-loop load through the edge: `concurrency` requests always in flight (each a different
 * person) until `total` have been sent or `stop()` is called. Every answer is kept: the ids
 * answered 202 are the promise under test. A worker answered anything but 202 waits
 * `REFUSED_PAUSE_MS` before its next request, as a client told 503 + Retry-After does (a shorter
 * wait than the header's, so the time until 202s come back is still seen to a tenth of a second):
 * without it, a burst against a stalled intake spun through ~90,000 instant refusals in a minute,
 * CPU the other stack of the suite (running beside it) and the failover itself needed.
 */
const REFUSED_PAUSE_MS = 100

export class Burst {
  readonly sent: Sent[] = []
  maxInFlight = 0
  #inFlight = 0
  #issued = 0
  #stopped = false
  readonly #pool: Pool
  readonly done: Promise<void>
  readonly #waiters: Array<{ n: number; resolve: () => void }> = []

  constructor(
    url: string,
    readonly opts: { concurrency: number; total: number; ca?: Buffer },
  ) {
    // The client timeout of docker-compose.yml (x-client-timeout: 30 s).
    this.#pool = new Pool(url, {
      // The edge's test certificate (Stack sets the global dispatcher; a Pool has its own).
      ...(opts.ca ? { connect: { ca: opts.ca } } : {}),
      connections: opts.concurrency,
      pipelining: 1,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    })
    this.done = Promise.all(Array.from({ length: opts.concurrency }, () => this.#worker())).then(() =>
      this.#pool.close(),
    )
  }

  async #worker(): Promise<void> {
    while (!this.#stopped && this.#issued < this.opts.total) {
      this.#issued++
      this.#inFlight++
      this.maxInFlight = Math.max(this.maxInFlight, this.#inFlight)
      const accepted = await this.#one()
      this.#inFlight--
      if (!accepted && !this.#stopped) await new Promise((r) => setTimeout(r, REFUSED_PAUSE_MS))
      for (const w of [...this.#waiters])
        if (this.sent.length >= w.n) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1)
          w.resolve()
        }
    }
  }

  /** One request; whether it was answered 202. */
  async #one(): Promise<boolean> {
    const nid = person()
    const at = Date.now()
    try {
      const res = await this.#pool.request({
        path: '/v1/registrations',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(registration(nid)),
      })
      const text = await res.body.text()
      const rec: Sent = { person: nid, status: res.statusCode, at, end: Date.now() }
      if (res.statusCode === 202) rec.id = (JSON.parse(text) as { id: string }).id
      this.sent.push(rec)
      return res.statusCode === 202
    } catch {
      this.sent.push({ person: nid, status: 'error', at, end: Date.now() })
      return false
    }
  }

  /** Resolves once n answers have come back (or the burst is over). */
  answered(n: number): Promise<void> {
    if (this.sent.length >= n) return Promise.resolve()
    return Promise.race([new Promise<void>((resolve) => this.#waiters.push({ n, resolve })), this.done])
  }

  async stop(): Promise<void> {
    this.#stopped = true
    await this.done
  }

  accepted(): Sent[] {
    return this.sent.filter((s) => s.status === 202)
  }

  /**
   * How long after `t` the gateways refused (anything but 202) before answering 202 again: from
   * t to the end of the last refused request that started after t, 0 when none was refused.
   */
  refusedFor(t: number): number {
    let last = t
    for (const s of this.sent) if (s.status !== 202 && s.at >= t - 1000 && s.end > last) last = s.end
    return last - t
  }

  /** The longest stretch after t in which no request got its 202 (ms): how long intake stood still. */
  longestWithout202(t: number): number {
    const ends = this.sent
      .filter((s) => s.status === 202 && s.end >= t)
      .map((s) => s.end)
      .sort((a, b) => a - b)
    let prev = t
    let worst = 0
    for (const e of ends) {
      worst = Math.max(worst, e - prev)
      prev = e
    }
    return worst
  }

  /** The longest any request that was answered after t waited for its answer (ms). */
  slowestAfter(t: number): number {
    let worst = 0
    for (const s of this.sent) if (s.end >= t) worst = Math.max(worst, s.end - s.at)
    return worst
  }
}
