import amqp from 'amqplib'
import pg from 'pg'
import { afterEach, describe, expect, it } from 'vitest'
import { allocationOf } from '../src/db/draws.js'
import { readWatermark } from '../src/db/intake-watermark.js'
import { MqClient } from '../src/mq/connection.js'
import { replayIntakeDead } from '../src/operations/index.js'
import { IntakeWatermark } from '../src/roles/recorder/intake-watermark.js'
import { topologyOptions } from '../src/runtime/start.js'
import {
  AMQP_URL,
  intakeMessage,
  publishIntake,
  queueDepth,
  sql,
  startTestSabt,
  type TestSabt,
  testConfig,
  testEnv,
  waitFor,
  withReplayPublisher,
} from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

// The intake watermark (decision 022): the instant before which every registration a gateway
// received is in PostgreSQL — what first_come's finality waits for. Moved by the recorders from
// what the broker and every live recorder's heartbeat say; never past a registration still queued,
// held by a recorder, or in the intake dead letters.

const WATERMARK_ENV = {
  SABT_INTAKE_WATERMARK_MARGIN_MS: '0',
  SABT_INTAKE_WATERMARK_EVERY_MS: '600000', // rounds are run by the test
  SABT_INTAKE_WATERMARK_HEARTBEAT_MS: '100',
  SABT_INTAKE_WATERMARK_EXPIRY_MS: '3000',
}

const recorded = async (s: TestSabt, id: string) =>
  (await sql(s.env.DATABASE_URL, 'SELECT 1 FROM registrations WHERE id = $1', [id])).length === 1

describe('the intake watermark', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {})
  })
  async function recorder(env: Record<string, string> = {}): Promise<TestSabt> {
    const s = await startTestSabt({ roles: ['recorder'], env: testEnv({ ...WATERMARK_ENV, ...env }) })
    cleanups.push(() => s.cleanup())
    return s
  }

  it('moves to now when nothing is queued or held, and never back', async () => {
    const s = await recorder()
    expect(await readWatermark(s.pool!)).toBeNull() // nothing is final before the first round
    const before = Date.now()
    const r = await s.recorder!.watermark.advance()
    expect(r.outcome).toBe('advanced')
    const w = (await readWatermark(s.pool!))!.getTime()
    expect(w).toBeGreaterThanOrEqual(before - 1000)
    expect(w).toBeLessThanOrEqual(Date.now() + 1000)
    // Another recorder says it holds a registration received an hour ago (its heartbeat fresh): the
    // round's answer is an hour back, and the watermark stays where it was — never back.
    await sql(
      s.env.DATABASE_URL,
      `INSERT INTO recorder_holds (recorder, held, oldest_received_at, written_at)
       VALUES ('other', 1, now() - interval '1 hour', clock_timestamp() + interval '1 minute')`,
    )
    expect(await s.recorder!.watermark.advance()).toEqual({ outcome: 'advanced', watermark: new Date(w) })
    expect((await readWatermark(s.pool!))!.getTime()).toBe(w)
  })

  it('stops at the oldest registration a recorder holds unwritten, and moves on once it is written', async () => {
    const s = await recorder()
    // The recorder's write waits on a lock: it holds the delivery, unacked, and nothing is queued.
    const locker = new pg.Client({ connectionString: s.env.DATABASE_URL })
    await locker.connect()
    cleanups.push(() => locker.end())
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE registrations IN ACCESS EXCLUSIVE MODE')
    const receivedAt = Date.now() - 60_000
    const m = intakeMessage({ received_at: receivedAt })
    await publishIntake(s, [m])
    await waitFor(() => s.recorder!.holding().held === 1, 'the recorder to hold the delivery')
    expect(await queueDepth(s.mq!.names.intakeQueues[0]!)).toBe(0)
    const r = await s.recorder!.watermark.advance()
    expect(r.outcome).toBe('advanced')
    expect((await readWatermark(s.pool!))!.getTime()).toBe(receivedAt)
    // Written: the next round passes it.
    await locker.query('ROLLBACK')
    await waitFor(() => recorded(s, m.id as string), 'the registration to be written')
    await waitFor(() => s.recorder!.holding().held === 0, 'the delivery to be acked')
    await s.recorder!.watermark.advance()
    expect((await readWatermark(s.pool!))!.getTime()).toBeGreaterThan(Date.now() - 5000)
  })

  it('does not move while a registration waits in an intake queue or in the intake dead letters', async () => {
    // The broker and the database, with no recorder consuming: this test runs the rounds.
    const s = await startTestSabt({ roles: ['gateway', 'status'], env: testEnv(WATERMARK_ENV) })
    cleanups.push(() => s.cleanup())
    const wm = new IntakeWatermark(
      { mq: s.mq!, pool: s.pool!, metrics: s.metrics, log: s.log },
      () => ({ held: 0, oldest: null }),
      { heartbeatMs: 100, everyMs: 600_000, marginMs: 0, expiryMs: 3000, graceMs: 200 },
      { lost: async () => {}, regained: async () => {} },
    )
    await wm.beat()
    await publishIntake(s, [intakeMessage({ received_at: Date.now() - 60_000 })])
    expect(await wm.round()).toEqual({ outcome: 'queued' })
    expect(await readWatermark(s.pool!)).toBeNull()
    // Taken off the queue into the dead letters (a registration the recorder could not store).
    const conn = await amqp.connect(AMQP_URL)
    try {
      const ch = await conn.createChannel()
      const got = await ch.get(s.mq!.names.intakeQueues[0]!, { noAck: false })
      expect(got).not.toBe(false)
      ch.nack(got as amqp.GetMessage, false, false) // → the intake dead letters
      await ch.close()
    } finally {
      await conn.close()
    }
    await waitFor(async () => (await queueDepth(s.mq!.names.intakeDead)) === 1, 'the dead letter')
    await wm.beat()
    expect(await wm.round()).toEqual({ outcome: 'dead_letters' })
    expect(await readWatermark(s.pool!)).toBeNull()
    metricsSay(await s.metrics.watermarkRounds.get(), { queued: 1, dead_letters: 1 })
  })

  it('does not move while RabbitMQ cannot be reached (its queues cannot be read)', async () => {
    const s = await startTestSabt({ roles: ['status'], env: testEnv(WATERMARK_ENV) })
    cleanups.push(() => s.cleanup())
    // Nothing listens on port 9: the client never connects, every queue read answers nothing.
    const mq = new MqClient('amqp://guest:guest@127.0.0.1:9', topologyOptions(s.env, s.config), s.log, 'test')
    await mq.start()
    try {
      const wm = new IntakeWatermark(
        { mq, pool: s.pool!, metrics: s.metrics, log: s.log },
        () => ({ held: 0, oldest: null }),
        { heartbeatMs: 100, everyMs: 600_000, marginMs: 0, expiryMs: 3000, graceMs: 200 },
        { lost: async () => {}, regained: async () => {} },
      )
      await wm.beat()
      expect(await wm.round()).toEqual({ outcome: 'broker' })
      expect(await readWatermark(s.pool!)).toBeNull()
    } finally {
      await mq.close()
    }
  })

  it('waits for a recorder that stopped writing its heartbeat until its row expires', async () => {
    const s = await recorder()
    // A recorder gone a moment ago (killed): its row is there, not written any more.
    await sql(
      s.env.DATABASE_URL,
      `INSERT INTO recorder_holds (recorder, held, oldest_received_at, written_at)
       VALUES ('gone', 3, now() - interval '1 minute', clock_timestamp())`,
    )
    expect(await s.recorder!.watermark.advance()).toEqual({ outcome: 'heartbeats' })
    expect(await readWatermark(s.pool!)).toBeNull()
    // Past the expiry (3 s) it is taken for gone: the broker has its deliveries back by then.
    await new Promise((r) => setTimeout(r, 3100))
    expect((await s.recorder!.watermark.advance()).outcome).toBe('advanced')
    expect(await sql(s.env.DATABASE_URL, `SELECT 1 FROM recorder_holds WHERE recorder = 'gone'`)).toEqual([])
  })

  it('a recorder that cannot write its heartbeat gives back what it holds and consumes again once it can', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5432)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const base = testEnv(WATERMARK_ENV)
    const direct = await startTestSabt({ roles: ['status'], env: base }) // migrates
    cleanups.push(() => direct.cleanup())
    const viaProxy = new URL(base.DATABASE_URL)
    viaProxy.port = String(proxy.port)
    const s = await startTestSabt({
      roles: ['recorder'],
      env: { ...base, DATABASE_URL: viaProxy.toString() },
    })
    cleanups.push(() => s.stop())

    await proxy.cut()
    const m = intakeMessage()
    await publishIntake(s, [m])
    await waitFor(() => s.recorder!.holding().held === 1, 'the recorder to hold the delivery')
    // Half the expiry (1.5 s) without a heartbeat: given back to the broker, not consumed again.
    await waitFor(() => s.recorder!.watermark.fenced, 'the recorder to fence itself', 10_000)
    await waitFor(
      async () => (await queueDepth(s.mq!.names.intakeQueues[0]!)) === 1,
      'the delivery back in its queue',
      10_000,
    )
    expect(s.recorder!.holding().held).toBe(0)
    await proxy.restore()
    await waitFor(() => recorded(direct, m.id as string), 'the registration written once it can', 30_000)
    expect(s.recorder!.watermark.fenced).toBe(false)
  })
})

describe('first_come finality waits for the intake', () => {
  it('a registration received first but held in the intake dead letters keeps the later places pending; replayed, it wins and each place is told once', async () => {
    const config = testConfig({
      checks: {},
      campaigns: { fc: { title: 'First come', capacity: 1, allocation: 'first_come' } },
    })
    const s = await startTestSabt({ roles: ['recorder', 'checker'], env: testEnv(), config })
    try {
      const fc = config.campaigns.get('fc')!
      const early: Record<string, unknown> = {
        ...intakeMessage({ received_at: Date.now() - 10_000 }),
        campaign: 'fc',
      }
      const later: Record<string, unknown> = {
        ...intakeMessage({ received_at: Date.now() - 5_000 }),
        campaign: 'fc',
      }
      // The earliest is in the intake dead letters (a recorder could not store it then); the later one is recorded.
      await publishIntake(s, [early], s.mq!.names.intakeDlx)
      await publishIntake(s, [later])
      await waitFor(() => recorded(s, later.id as string), 'the later registration recorded')
      const place = (id: string) => allocationOf(s.pool!, fc, { id, status: 'accepted' })
      await new Promise((r) => setTimeout(r, 1500)) // rounds and sweeps run: the place must stay open
      expect(await place(later.id as string)).toEqual({ state: 'pending' })
      expect(await readWatermark(s.pool!)).toBeNull()

      expect(await withReplayPublisher(s.mq!, (deps) => replayIntakeDead(deps))).toMatchObject({
        replayed: 1,
      })
      await waitFor(() => recorded(s, early.id as string), 'the replayed registration recorded')
      await waitFor(
        async () => (await place(later.id as string))?.state !== 'pending',
        'the later place final',
        30_000,
      )
      expect(await place(early.id as string)).toEqual({ state: 'won' })
      expect(await place(later.id as string)).toEqual({ state: 'waitlisted', position: 1 })
      // Told once each, by the finality sweep (no callback configured, no SMS: just marked).
      await waitFor(
        async () =>
          (await sql(s.env.DATABASE_URL, 'SELECT 1 FROM registrations WHERE allocation_told_at IS NOT NULL'))
            .length === 2,
        'both places told',
      )
      const final = (await s.metrics.allocationsFinal.get()).values.reduce((n, v) => n + v.value, 0)
      expect(final).toBe(2)
    } finally {
      await s.cleanup()
    }
  })
})

function metricsSay(
  m: { values: { labels: Record<string, string | number>; value: number }[] },
  want: Record<string, number>,
): void {
  for (const [outcome, n] of Object.entries(want))
    expect(m.values.find((v) => v.labels.outcome === outcome)?.value, outcome).toBe(n)
}
