import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { promisify } from 'node:util'
import amqp from 'amqplib'
import pg from 'pg'
import { parse as parseYaml } from 'yaml'
import { identityMatches } from '../../src/roles/simulator/answers.js'
import type { Cluster } from './cluster.js'
import type { Load } from './load.js'

// What the checker's scenarios need beyond the harness (issue 16: a check queue at its bound,
// the callback receiver down while the checker is killed, a checker with a configuration that
// lacks the campaign): configurations of their own, a policy that bounds one queue, a verdict
// callback receiver, and a count of wrong verdicts.

const sh = promisify(execFile)

/** chaos/chaos.yaml with changes, written where the scenario's processes can read it (SABT_CONFIG). */
export function chaosConfig(change: (doc: ChaosDoc) => void): string {
  const doc = parseYaml(readFileSync('chaos/chaos.yaml', 'utf8')) as ChaosDoc
  change(doc)
  mkdirSync('test-results/chaos', { recursive: true })
  const path = `test-results/chaos/config-${Date.now().toString(36)}-${randomBytes(2).toString('hex')}.json`
  writeFileSync(path, JSON.stringify(doc, null, 2))
  return path
}

/** A provider path on the scenario's simulator, as the configuration file reads it from the environment. */
export function simulatorUrl(path: string): string {
  return `\${SABT_SIMULATOR_URL}${path}`
}

export interface ChaosDoc {
  retry_tiers: string[]
  checks: Record<string, Record<string, unknown>>
  campaigns: Record<string, { title: string; checks?: unknown[]; callback_url?: string }>
}

/**
 * Bounds a queue at `max` messages for as long as the policy stands: with the queue's own
 * `x-overflow: reject-publish`, RabbitMQ refuses (nacks) every publish once it holds that many —
 * exactly what a queue at its bound does. Returns the function that lifts it.
 */
export async function boundQueue(queue: string, name: string, max: number): Promise<() => Promise<void>> {
  const pattern = `^${queue.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`
  await sh('rabbitmqctl', [
    'set_policy',
    '--apply-to',
    'queues',
    '--priority',
    '100',
    name,
    pattern,
    JSON.stringify({ 'max-length': max }),
  ])
  let lifted = false
  return async () => {
    if (lifted) return
    lifted = true
    await sh('rabbitmqctl', ['clear_policy', name])
  }
}

/** Messages ready in a queue (passive declare on a connection of its own). */
export async function depth(queue: string): Promise<number> {
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672')
  try {
    const ch = await conn.createChannel()
    return (await ch.checkQueue(queue)).messageCount
  } finally {
    await conn.close().catch(() => {})
  }
}

/** A verdict callback receiver the test can take down and bring back on the same port. */
export class CallbackReceiver {
  /** Deliveries answered 2xx, by Idempotency-Key. */
  readonly taken = new Map<string, number>()
  #server: Server | null = null
  readonly #sockets = new Set<Socket>()
  port = 0

  get url(): string {
    return `http://127.0.0.1:${this.port}/verdicts`
  }

  async up(): Promise<void> {
    const server = createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        const key = String(req.headers['idempotency-key'] ?? '')
        this.taken.set(key, (this.taken.get(key) ?? 0) + 1)
        res.writeHead(204).end()
      })
    })
    server.on('connection', (s) => {
      this.#sockets.add(s)
      s.on('close', () => this.#sockets.delete(s))
    })
    server.keepAliveTimeout = 1000
    server.listen(this.port, '127.0.0.1')
    await once(server, 'listening')
    this.port = (server.address() as { port: number }).port
    this.#server = server
  }

  /** Down: refuses connections, and the open ones are cut. */
  async down(): Promise<void> {
    const server = this.#server
    this.#server = null
    if (!server) return
    const closed = new Promise((r) => server.close(r))
    for (const s of this.#sockets) s.destroy()
    await closed
  }

  /** Deliveries beyond the first per key: the retries a receiver must tolerate. */
  repeated(): number {
    let n = 0
    for (const c of this.taken.values()) n += c - 1
    return n
  }
}

async function query<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  await c.connect()
  try {
    return (await c.query<T>(text, values)).rows
  } finally {
    await c.end()
  }
}

/** Waits until every final verdict's callback is recorded as sent; returns the final records' ids. */
export async function callbacksSettled(cluster: Cluster, timeoutMs = 180_000): Promise<string[]> {
  const url = cluster.env.DATABASE_URL!
  const until = Date.now() + timeoutMs
  let owed = -1
  for (;;) {
    const rows = await query<{ owed: number }>(
      url,
      `SELECT count(*)::int AS owed FROM registrations
       WHERE campaign = 'chaos' AND status IN ('accepted', 'rejected') AND callback_status IS DISTINCT FROM 'sent'`,
    ).catch(() => null)
    if (rows) owed = rows[0]!.owed
    if (owed === 0) break
    if (Date.now() > until) throw new Error(`${owed} verdict callback(s) still not sent`)
    await new Promise((r) => setTimeout(r, 500))
  }
  const finals = await query<{ id: string }>(
    url,
    `SELECT id::text FROM registrations WHERE campaign = 'chaos' AND status IN ('accepted', 'rejected')`,
  )
  return finals.map((f) => f.id)
}

/**
 * Records whose verdict is not the provider's answer: `accepted` without identity `passed`,
 * `rejected` without identity `failed`, or a verdict other than the simulator's deterministic one.
 */
export async function wrongVerdicts(cluster: Cluster, load: Load): Promise<number> {
  const url = cluster.env.DATABASE_URL!
  const rows = await query<{ id: string; status: string; outcome: string | null }>(
    url,
    `SELECT r.id::text, r.status, c.outcome FROM registrations r
     LEFT JOIN check_results c ON c.registration_id = r.id AND c.check_name = 'identity'
     WHERE r.campaign = 'chaos'`,
  )
  const person = new Map(load.accepted().map((s) => [s.id!, s.person]))
  let wrong = 0
  for (const r of rows) {
    if (r.status === 'accepted' && r.outcome !== 'passed') wrong++
    else if (r.status === 'rejected' && r.outcome !== 'failed') wrong++
    else if (r.status === 'accepted' || r.status === 'rejected') {
      const nid = person.get(r.id)
      if (!nid) continue // refused by the gateway's answer yet recorded: its person is unknown here
      const expected = identityMatches({
        national_id: nid,
        first_name: 'آزمون',
        last_name: 'پایداری',
        birth_date: '1990-01-01',
      })
        ? 'accepted'
        : 'rejected'
      if (r.status !== expected) wrong++
    }
  }
  return wrong
}

/** A role's counter from its /metrics, summed over the label sets that include `labels`. */
export async function counter(
  cluster: Cluster,
  name: string,
  metric: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${cluster.url(name)}/metrics`)).text()
  let total = 0
  for (const line of text.split('\n')) {
    const m = /^([a-z_0-9]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== metric) continue
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]),
    )
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3])
  }
  return total
}
