import amqp from 'amqplib'
import { v7 as uuidv7 } from 'uuid'
import { afterEach, describe, expect, it } from 'vitest'
import { resolveSecrets } from '../src/config/secrets.js'
import type { Registration } from '../src/domain/registration.js'
import { encodeIntakeMessage } from '../src/mq/messages.js'
import { Publisher } from '../src/mq/publisher.js'
import { shardKey } from '../src/mq/topology.js'
import { createLogger } from '../src/observability/logger.js'
import { Metrics } from '../src/observability/metrics.js'
import { intakeDeadList, replayIntakeDead } from '../src/operations/index.js'
import { newKey, parseDataKeys, Sealer } from '../src/privacy/sealing.js'
import {
  AMQP_URL,
  drainCheckIds,
  intakeMessage,
  nationalId,
  publishIntake,
  queueDepth,
  registration,
  sql,
  startTestSabt,
  type TestSabt,
  testConfig,
  testEnv,
  waitFor,
} from './support/harness.js'
import { TcpProxy } from './support/tcp-proxy.js'

const count = async (s: TestSabt, table: string, ids: string[]) =>
  (
    await sql<{ n: number }>(
      s.env.DATABASE_URL,
      `SELECT count(*)::int AS n FROM ${table} WHERE id = ANY($1)`,
      [ids],
    )
  )[0]!.n

describe('recorder', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })
  async function start(env = testEnv()): Promise<TestSabt> {
    const s = await startTestSabt({ roles: ['recorder'], env })
    cleanups.push(() => s.cleanup())
    return s
  }

  it('changes nothing when an intake message is delivered again', async () => {
    const s = await start()
    const m = intakeMessage()
    await publishIntake(s, [m])
    await waitFor(async () => (await count(s, 'registrations', [m.id as string])) === 1, 'recorded once')
    const before = await sql(s.env.DATABASE_URL, 'SELECT * FROM registrations WHERE id = $1', [m.id])
    const checkQueue = s.mq!.names.checkQueue('identity')
    await waitFor(async () => (await queueDepth(checkQueue)) === 1, 'one identity check queued')
    expect(await drainCheckIds(checkQueue)).toEqual([m.id])

    await publishIntake(s, [m, m]) // as if redelivered, twice
    await waitFor(
      async () =>
        (await s.metrics.rowsWritten.get()).values.find((v) => v.labels.kind === 'redelivered')?.value === 2,
      'both redeliveries seen',
    )
    const after = await sql(s.env.DATABASE_URL, 'SELECT * FROM registrations WHERE id = $1', [m.id])
    expect(after).toEqual(before)
    expect(await count(s, 'duplicates', [m.id as string])).toBe(0)
    // The record is still unchecked, so its check is asked again (the checker answers it once).
    await waitFor(async () => (await queueDepth(checkQueue)) >= 1, 'check messages re-published')
    const again = await waitFor(async () => {
      const ids = await drainCheckIds(checkQueue)
      return ids.length > 0 && ids
    }, 'the re-published ids')
    expect(new Set(again)).toEqual(new Set([m.id]))
  })

  it('stores what the gateway sealed as it is, still reads version-1 messages, and dead-letters a message sealed with a key it lacks', async () => {
    const s = await start(testEnv({ SABT_BATCH_MS: '200' }))
    const sealer = new Sealer(resolveSecrets(s.env).dataKeys)
    const foreign = new Sealer(parseDataKeys(`kx:${newKey()}`, undefined, s.env.SABT_INDEX_KEY!))
    const fields = { ...registration(), attributes: null } as unknown as Registration
    const sealedId = uuidv7()
    const body = encodeIntakeMessage(sealer, sealedId, Date.now(), fields)
    const v1 = intakeMessage()
    const strangerId = uuidv7()
    await publishIntake(s, [
      body.toString(),
      v1,
      encodeIntakeMessage(foreign, strangerId, Date.now(), {
        ...fields,
        national_id: nationalId(),
      }).toString(),
    ])
    await waitFor(
      async () => (await count(s, 'registrations', [sealedId, v1.id as string])) === 2,
      'both recorded',
    )
    const sent = JSON.parse(body.toString()) as Record<string, string>
    const [row] = await sql<{ nid: Buffer; mob: Buffer; idx: Buffer; key_id: string }>(
      s.env.DATABASE_URL,
      'SELECT national_id_sealed AS nid, mobile_sealed AS mob, national_id_index AS idx, key_id FROM registrations WHERE id = $1',
      [sealedId],
    )
    // The very ciphertexts the gateway made: the recorder never saw the clear values.
    expect(row!.nid.toString('base64')).toBe(sent.national_id_sealed)
    expect(row!.mob.toString('base64')).toBe(sent.mobile_sealed)
    expect(row!.idx.equals(sealer.blindIndex(fields.national_id))).toBe(true)
    expect(sealer.open(row!.nid, row!.key_id, `${sealedId}:national_id`)).toBe(fields.national_id)
    expect(sealer.open(row!.mob, row!.key_id, `${sealedId}:mobile`)).toBe(fields.mobile)
    // The version-1 message was sealed by the recorder, with the current key.
    const [old] = await sql<{ nid: Buffer; key_id: string }>(
      s.env.DATABASE_URL,
      'SELECT national_id_sealed AS nid, key_id FROM registrations WHERE id = $1',
      [v1.id],
    )
    expect(sealer.open(old!.nid, old!.key_id, `${v1.id}:national_id`)).toBe(v1.national_id)

    await waitFor(async () => (await queueDepth(s.mq!.names.intakeDead)) === 1, 'one dead letter')
    expect(await count(s, 'registrations', [strangerId])).toBe(0)
    const dead = (await s.metrics.intakeDeadLettered.get()).values.map((v) => [v.labels.reason, v.value])
    expect(dead).toEqual([['unknown_key', 1]])
  })

  it('dead-letters an unparseable message without holding back its batch', async () => {
    const s = await start(testEnv({ SABT_BATCH_MS: '200' }))
    const a = intakeMessage()
    const b = intakeMessage()
    await publishIntake(s, [
      a,
      'not json {',
      { ...intakeMessage(), v: 99 },
      intakeMessage({ campaign: 'gone' }),
      b,
    ])
    await waitFor(
      async () => (await count(s, 'registrations', [a.id as string, b.id as string])) === 2,
      'both good ones recorded',
    )
    await waitFor(async () => (await queueDepth(s.mq!.names.intakeDead)) === 3, 'three dead letters')
    expect(await queueDepth(s.mq!.names.intakeQueues[0]!)).toBe(0)
    const dead = (await s.metrics.intakeDeadLettered.get()).values.map((v) => [v.labels.reason, v.value])
    expect(dead).toEqual(
      expect.arrayContaining([
        ['unparseable', 2],
        ['unknown_campaign', 1],
      ]),
    )
  })

  it('keeps intake dead letters until the cause is fixed, lists them without personal data, and replays them into the record', async () => {
    const env = testEnv({ SABT_BATCH_MS: '50' })
    const first = await start(env)
    const sealer = new Sealer(resolveSecrets(env).dataKeys)
    const fields = { ...registration({ campaign: 'spring' }), attributes: null } as unknown as Registration
    const id = uuidv7()
    // A campaign this recorder's configuration does not have (yet).
    await publishIntake(first, [encodeIntakeMessage(sealer, id, Date.now(), fields).toString(), 'garbage'])
    await waitFor(async () => (await queueDepth(first.mq!.names.intakeDead)) === 2, 'two dead letters')

    const list = await intakeDeadList(first.mq!)
    expect(list).toMatchObject({ queued: 2, unreadable: 1, items: [{ id, campaign: 'spring', v: 2 }] })
    expect(JSON.stringify(list)).not.toContain(fields.national_id)
    expect(await queueDepth(first.mq!.names.intakeDead)).toBe(2) // listing takes nothing

    // The fix: a recorder that knows the campaign; then the replay.
    await first.stop()
    const config = testConfig({
      retry_tiers: ['1s'],
      checks: { identity: { provider: 'identity', url: 'http://127.0.0.1:9/identity' } },
      campaigns: { spring: { title: 'Spring' } },
    })
    const fixed = await startTestSabt({ roles: ['recorder'], env, config })
    cleanups.push(() => fixed.cleanup())
    const log = createLogger({ level: 'silent' })
    const publisher = new Publisher(
      fixed.mq!,
      { name: 'replay', confirmTimeoutMs: 3000, maxInFlight: 10 },
      new Metrics({ defaultMetrics: false }),
      log,
    )
    await publisher.start()
    try {
      // A replay that cannot reach the intake queue (binding gone: the publish is returned)
      // fails and leaves every dead letter where it was.
      const admin = await amqp.connect(AMQP_URL)
      const ch = await admin.createChannel()
      const intakeQueue = fixed.mq!.names.intakeQueues[0]!
      await ch.unbindQueue(intakeQueue, fixed.mq!.names.intakeExchange, shardKey(0))
      await expect(replayIntakeDead({ mq: fixed.mq!, publisher, log })).rejects.toThrow()
      expect(await queueDepth(fixed.mq!.names.intakeDead)).toBe(2)
      await ch.bindQueue(intakeQueue, fixed.mq!.names.intakeExchange, shardKey(0))
      await admin.close()

      expect(await replayIntakeDead({ mq: fixed.mq!, publisher, log })).toEqual({ replayed: 1, kept: 1 })
    } finally {
      await publisher.close()
    }
    await waitFor(async () => (await count(fixed, 'registrations', [id])) === 1, 'recorded after the replay')
    const [row] = await sql<{ status: string }>(
      env.DATABASE_URL,
      'SELECT status FROM registrations WHERE id = $1',
      [id],
    )
    expect(row!.status).toBe('accepted') // a campaign without checks
    expect(await queueDepth(fixed.mq!.names.intakeDead)).toBe(1) // the garbage stays, for a person to look at
  })

  it('isolates a row the database refuses, writing the rest of the batch', async () => {
    const s = await start(testEnv({ SABT_BATCH_MS: '200' }))
    const good = [intakeMessage(), intakeMessage(), intakeMessage()]
    // Passes the envelope's pattern, but is not a date PostgreSQL accepts: a data error (22008).
    const bad = intakeMessage({ birth_date: '1990-02-31' })
    await publishIntake(s, [good[0]!, bad, good[1]!, good[2]!])
    await waitFor(
      async () =>
        (await count(
          s,
          'registrations',
          good.map((g) => g.id as string),
        )) === 3,
      'the good rows',
    )
    await waitFor(async () => (await queueDepth(s.mq!.names.intakeDead)) === 1, 'the bad one dead-lettered')
    expect(await count(s, 'registrations', [bad.id as string])).toBe(0)
  })

  it('resolves a person submitting twice inside one batch to the earliest submission', async () => {
    const s = await start(testEnv({ SABT_BATCH_MS: '300' }))
    const nid = nationalId()
    const early = intakeMessage({ national_id: nid })
    const late = intakeMessage({ national_id: nid })
    // Delivered out of order, in the same batch: the earlier one is the record, the later one waits
    // beside it while it is checked (decision 015).
    await publishIntake(s, [late, early])
    await waitFor(async () => (await count(s, 'waiting', [late.id as string])) === 1, 'the later one waiting')
    expect(await count(s, 'registrations', [early.id as string, late.id as string])).toBe(1)
    expect(await count(s, 'registrations', [early.id as string])).toBe(1)
    // In a campaign without checks the earlier is accepted at once: the later is its duplicate.
    const nid2 = nationalId()
    const early2 = intakeMessage({ national_id: nid2, campaign: 'nocheck' })
    const late2 = intakeMessage({ national_id: nid2, campaign: 'nocheck' })
    await publishIntake(s, [late2, early2])
    await waitFor(async () => (await count(s, 'duplicates', [late2.id as string])) === 1, 'the duplicate')
    const dup = await sql<{ original_id: string }>(
      s.env.DATABASE_URL,
      'SELECT original_id::text FROM duplicates WHERE id = $1',
      [late2.id],
    )
    expect(dup[0]!.original_id).toBe(early2.id)
  })

  it('holds its batch while PostgreSQL is unreachable and writes it when it is back', async () => {
    const proxy = new TcpProxy('127.0.0.1', 5432)
    await proxy.start()
    cleanups.push(() => proxy.close())
    const base = testEnv()
    const viaProxy = new URL(base.DATABASE_URL)
    viaProxy.port = String(proxy.port)
    // Migrate through the direct URL, then run the recorder through the proxy.
    const direct = await startTestSabt({ roles: ['status'], env: base })
    cleanups.push(() => direct.cleanup())
    const s = await startTestSabt({
      roles: ['recorder'],
      env: { ...base, DATABASE_URL: viaProxy.toString() },
    })
    cleanups.push(() => s.stop())

    await proxy.cut()
    const msgs = Array.from({ length: 20 }, () => intakeMessage())
    await publishIntake(s, msgs)
    await waitFor(
      async () =>
        ((await s.metrics.recorderRetries.get()).values.find((v) => v.labels.cause === 'database')?.value ??
          0) >= 2,
      'the recorder to retry the write',
    )
    // Held, not acked and not lost: nothing in the table, nothing dead-lettered, all still unacked.
    expect(
      await count(
        direct,
        'registrations',
        msgs.map((m) => m.id as string),
      ),
    ).toBe(0)
    expect(await queueDepth(s.mq!.names.intakeDead)).toBe(0)
    expect(await queueDepth(s.mq!.names.intakeQueues[0]!)).toBe(0) // delivered to the recorder, unacked

    await proxy.restore()
    await waitFor(
      async () =>
        (await count(
          direct,
          'registrations',
          msgs.map((m) => m.id as string),
        )) === 20,
      'all 20 written',
      30_000,
    )
    // Their checks, one message per batch carrying all their ids.
    const queued: string[] = []
    await waitFor(async () => {
      queued.push(...(await drainCheckIds(s.mq!.names.checkQueue('identity'))))
      return queued.length === 20
    }, 'their checks queued')
    expect(new Set(queued)).toEqual(new Set(msgs.map((m) => m.id)))
  })

  it('on SIGTERM-style stop, writes and acks what it holds', async () => {
    const s = await startTestSabt({
      roles: ['recorder'],
      env: testEnv({ SABT_BATCH_MS: '60000', SABT_BATCH_SIZE: '1000' }),
    })
    cleanups.push(async () => {
      const { dropDatabase, dropTopology } = await import('./support/harness.js')
      await dropTopology(s.env, s.config)
      await dropDatabase(s.env.DATABASE_URL)
    })
    const msgs = Array.from({ length: 10 }, () => intakeMessage())
    await publishIntake(s, msgs)
    await waitFor(() => s.recorder!.batcher.pending === 10, 'the batch to be held (it would wait a minute)')
    await s.stop()
    const flushes = (await s.metrics.flushes.get()).values.find((v) => v.labels.reason === 'shutdown')
    expect(flushes?.value).toBe(1)
    expect(
      await count(
        s,
        'registrations',
        msgs.map((m) => m.id as string),
      ),
    ).toBe(10)
    expect(await queueDepth(s.mq!.names.intakeQueues[0]!)).toBe(0)
  })
})

describe('intake delivery limit', () => {
  it('dead-letters a message that keeps failing instead of letting it loop (x-delivery-limit, set explicitly)', async () => {
    const {
      startTestSabt: start,
      testEnv: env,
      dropTopology,
      dropDatabase,
    } = await import('./support/harness.js')
    // The gateway declares the topology; no recorder runs: this test plays a consumer that fails.
    const s = await start({ roles: ['gateway'], env: env({ SABT_INTAKE_DELIVERY_LIMIT: '2' }) })
    try {
      await publishIntake(s, [intakeMessage()])
      const conn = await amqp.connect(AMQP_URL)
      const ch = await conn.createChannel()
      const queue = s.mq!.names.intakeQueues[0]!
      let deliveries = 0
      await ch.consume(queue, (m) => {
        if (!m) return
        deliveries++
        ch.nack(m, false, true) // "failed again": back to the queue
      })
      await waitFor(async () => (await queueDepth(s.mq!.names.intakeDead)) === 1, 'the message dead-lettered')
      await conn.close()
      expect(deliveries).toBeGreaterThanOrEqual(2)
      expect(deliveries).toBeLessThanOrEqual(3)
      expect(await queueDepth(queue)).toBe(0)
    } finally {
      await s.stop()
      await dropTopology(s.env, s.config)
      await dropDatabase(s.env.DATABASE_URL)
    }
  })
})
