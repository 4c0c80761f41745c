import { writeFileSync } from 'node:fs'
import amqp from 'amqplib'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { TcpProxy } from '../test/support/tcp-proxy.js'
import {
  boundQueue,
  CallbackReceiver,
  callbacksSettled,
  chaosConfig,
  counter,
  depth,
  simulatorUrl,
  wrongVerdicts,
} from './support/checker-faults.js'
import { Cluster } from './support/cluster.js'
import { Load } from './support/load.js'
import {
  alarms,
  DEFAULT_DISK_FREE_LIMIT,
  ensureServicesUp,
  killRabbit,
  restartPostgres,
  setDatabaseReadOnly,
  setDiskFreeLimit,
  startApp,
  startRabbit,
  stopApp,
  terminateBackends,
} from './support/services.js'
import { dropCluster, settle, type Tally, table } from './support/verify.js'

// Fault injection under load (issue: "Sabt under fire"). Each scenario runs Sabt as separate
// processes, drives steady load, injects one fault, recovers, and counts against PostgreSQL:
// every 202'd id recorded exactly once, every record settled, nothing recorded twice.
const RATE = Number(process.env.CHAOS_RATE ?? 1000)
const LOAD_MS = Number(process.env.CHAOS_LOAD_MS ?? 12_000)
const SLOW_MS = Number(process.env.CHAOS_SLOW_MS ?? 60_000)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const rows: Tally[] = []
let current: { cluster: Cluster; load: Load | null } | null = null

afterEach(async () => {
  // Whatever happened: services back, processes stopped, names dropped.
  await ensureServicesUp()
  if (current) {
    await current.load?.stop().catch(() => {})
    await current.cluster.stopAll()
    await dropCluster(current.cluster)
    current = null
  }
})

afterAll(() => {
  const md = table(rows)
  writeFileSync('test-results/chaos-table.md', `${md}\n`)
  process.stdout.write(`\n${md}\n\n`)
})

interface Ctx {
  cluster: Cluster
  load: Load
  gateways: string[]
  /** When the fault was undone: recovery is measured from here. */
  restoredAt?: number
  notes?: string
}

async function scenario(
  name: string,
  fault: (ctx: Ctx) => Promise<void>,
  opts: {
    env?: Record<string, string>
    gateways?: number
    /** Runs once the simulator is up, before the other roles: returns extra environment per role. */
    setup?: (cluster: Cluster) => Promise<Partial<Record<string, Record<string, string>>>>
    loadMs?: number
    recovery?: 'intake' | 'drain'
  } = {},
): Promise<Tally> {
  const cluster = new Cluster({
    SABT_SIMULATOR_KNOBS: JSON.stringify({ identity: { latency_median_ms: 5, latency_p99_ms: 20 } }),
    ...opts.env,
  })
  current = { cluster, load: null }
  await cluster.prepare()
  await cluster.start('simulator', 'simulator')
  const roleEnv = (await opts.setup?.(cluster)) ?? {}
  await cluster.start('recorder', 'recorder', roleEnv.recorder)
  await cluster.start('checker', 'checker', roleEnv.checker)
  const gateways: string[] = []
  for (let i = 0; i < (opts.gateways ?? 1); i++) {
    await cluster.start(`gateway${i}`, 'gateway')
    gateways.push(`gateway${i}`)
  }
  const load = new Load(
    gateways.map((g) => cluster.url(g)),
    RATE,
  )
  current.load = load
  const ctx: Ctx = { cluster, load, gateways }
  const started = Date.now()
  load.start()
  await sleep(2500)
  await fault(ctx)
  // Load goes on after the fault for the rest of the run, and at least 3 s: recovery is observed.
  await sleep(Math.max(3000, (opts.loadMs ?? LOAD_MS) - (Date.now() - started)))
  await load.stop()
  await ensureServicesUp()
  // A role that died by itself is a failure, whatever the counts say: restarting it would hide
  // the crash (a checker that died on a database restart once passed as "0 lost, 0 unsettled").
  expect(cluster.crashes(), 'no role may exit unless the scenario ended it').toEqual([])
  // Every role running again (a scenario may have left one killed or frozen).
  for (const [n, p] of cluster.procs) {
    if (p.child) process.kill(p.child.pid!, 'SIGCONT')
    else await cluster.start(n, p.role, roleEnv[n])
  }
  const tallied = await settle(cluster, load, name)
  expect(cluster.crashes(), 'no role may exit while the backlog settles').toEqual([])
  const drainedAt = Date.now()
  let recoverMs: number | null = null
  if (ctx.restoredAt) {
    if (opts.recovery === 'drain') recoverMs = drainedAt - ctx.restoredAt
    else {
      const first = load.firstAcceptedAfter(ctx.restoredAt)
      recoverMs = first === null ? null : first - ctx.restoredAt
    }
  }
  const row: Tally = { ...tallied, recoverMs, notes: ctx.notes ?? '' }
  rows.push(row)
  expect({ lost: row.lost, duplicates: row.duplicates, unsettled: row.unsettled }).toEqual({
    lost: 0,
    duplicates: 0,
    unsettled: 0,
  })
  expect(row.accepted).toBeGreaterThan(0)
  return row
}

/** Requests that started in [from, to) and were answered 202: must be none while intake cannot be confirmed. */
function acceptedBetween(load: Load, from: number, to: number): number {
  return load.sent.filter((s) => s.status === 202 && s.at >= from && s.at < to).length
}

async function withBroker<T>(fn: (ch: amqp.Channel) => Promise<T>): Promise<T> {
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672')
  try {
    return await fn(await conn.createChannel())
  } finally {
    await conn.close().catch(() => {})
  }
}

describe('chaos: kill every component mid-surge, lose nothing', () => {
  it('SIGKILL a gateway', async () => {
    const row = await scenario(
      'SIGKILL a gateway',
      async (ctx) => {
        await ctx.cluster.kill('gateway0')
        await sleep(2000)
        await ctx.cluster.start('gateway0', 'gateway')
        ctx.restoredAt = Date.now()
      },
      { gateways: 2 },
    )
    expect(row.refused).toBeGreaterThan(0) // clients did see the connection errors
  })

  it('SIGSTOP the recorder and the checker past a batch timeout, then SIGCONT', async () => {
    await scenario(
      'SIGSTOP recorder + checker for 5 s',
      async (ctx) => {
        ctx.cluster.signal('recorder', 'SIGSTOP')
        ctx.cluster.signal('checker', 'SIGSTOP')
        await sleep(5000)
        ctx.cluster.signal('recorder', 'SIGCONT')
        ctx.cluster.signal('checker', 'SIGCONT')
        ctx.restoredAt = Date.now()
      },
      { recovery: 'drain' },
    )
  })

  it('RabbitMQ disk alarm, then a full intake queue: 503 + Retry-After, never 202, memory bounded', async () => {
    await scenario(
      'disk alarm, then full intake queue',
      async (ctx) => {
        const { cluster, load } = ctx
        await setDiskFreeLimit('100000GB') // above the free space: the broker blocks publishers
        // The broker's disk monitor notices on its next sample: measure from the alarm itself.
        const alarmDeadline = Date.now() + 30_000
        while (!/disk/.test(await alarms())) {
          if (Date.now() > alarmDeadline) throw new Error('the disk alarm was not raised')
          await sleep(200)
        }
        const alarmAt = Date.now()
        await sleep(4000)
        const rssAlarm = cluster.rssMb('gateway0')
        // The window ends when we start lifting the alarm (rabbitmqctl itself takes a moment).
        const clearedAt = Date.now()
        await setDiskFreeLimit(DEFAULT_DISK_FREE_LIMIT)
        // Publishes that started once the alarm was raised (and had reached the gateway, a moment
        // later) must not have been 202'd.
        expect(acceptedBetween(load, alarmAt + 500, clearedAt)).toBe(0)
        expect(
          load.sent.filter((s) => s.status === 503 && s.at >= alarmAt && s.at < clearedAt).length,
        ).toBeGreaterThan(0)
        // A full queue: the recorder stops consuming, the bounded intake fills, the gateway sheds.
        await cluster.kill('recorder')
        const fullFrom = Date.now()
        const shed = () => load.sent.filter((s) => s.status === 503 && s.at >= fullFrom).length
        const until = Date.now() + 15_000
        while (shed() < 50 && Date.now() < until) await sleep(200)
        const rssFull = cluster.rssMb('gateway0')
        expect(shed()).toBeGreaterThanOrEqual(50)
        expect(Math.max(rssAlarm, rssFull)).toBeLessThan(300)
        await cluster.start('recorder', 'recorder')
        ctx.restoredAt = Date.now()
        ctx.notes = `gateway RSS ${Math.round(rssAlarm)} MB in alarm, ${Math.round(rssFull)} MB with the queue full`
      },
      { env: { SABT_INTAKE_MAX_LENGTH: '300' }, loadMs: 25_000 },
    )
  })

  it('an unroutable publish (binding removed at run time): 503, not a false 202', async () => {
    await scenario('intake binding removed for 3 s', async (ctx) => {
      const { cluster, load } = ctx
      const prefix = cluster.env.SABT_MQ_PREFIX!
      await withBroker((ch) => ch.unbindQueue(`${prefix}.intake`, `${prefix}.intake`, '0'))
      const from = Date.now()
      await sleep(3000)
      const to = Date.now()
      await withBroker((ch) => ch.bindQueue(`${prefix}.intake`, `${prefix}.intake`, '0'))
      ctx.restoredAt = Date.now()
      expect(acceptedBetween(load, from + 200, to)).toBe(0)
      expect(load.sent.filter((s) => s.status === 503 && s.at >= from && s.at < to).length).toBeGreaterThan(0)
    })
  })

  it('SIGKILL RabbitMQ itself and restart it', async () => {
    await scenario(
      'kill -9 RabbitMQ, restart',
      async (ctx) => {
        await killRabbit()
        await sleep(1000)
        await startRabbit()
        ctx.restoredAt = Date.now()
      },
      { loadMs: 25_000 },
    )
  })

  it('SIGKILL the recorder mid-batch, restart it', async () => {
    await scenario(
      'SIGKILL recorder mid-batch',
      async (ctx) => {
        await ctx.cluster.kill('recorder')
        await sleep(2000)
        await ctx.cluster.start('recorder', 'recorder')
        ctx.restoredAt = Date.now()
      },
      { recovery: 'drain' },
    )
  })

  it('SIGKILL the checker mid-call, restart it', async () => {
    await scenario(
      'SIGKILL checker mid-call',
      async (ctx) => {
        await ctx.cluster.kill('checker')
        await sleep(2000)
        await ctx.cluster.start('checker', 'checker')
        ctx.restoredAt = Date.now()
      },
      {
        recovery: 'drain',
        env: {
          SABT_SIMULATOR_KNOBS: JSON.stringify({ identity: { latency_median_ms: 80, latency_p99_ms: 200 } }),
        },
      },
    )
  })

  it('RabbitMQ stop_app / start_app during load: 503 while down, reconnects by itself', async () => {
    await scenario(
      'rabbitmqctl stop_app / start_app',
      async (ctx) => {
        await stopApp()
        const down = Date.now()
        await sleep(4000)
        const upCmd = Date.now()
        expect(acceptedBetween(ctx.load, down + 500, upCmd)).toBe(0)
        await startApp()
        ctx.restoredAt = Date.now()
      },
      { loadMs: 25_000 },
    )
  })

  it('PostgreSQL restarted during load', async () => {
    await scenario(
      'pg_ctlcluster restart',
      async (ctx) => {
        await restartPostgres()
        ctx.restoredAt = Date.now()
      },
      { recovery: 'drain' },
    )
  })

  it('PostgreSQL backends terminated three times during load: every role stays up', async () => {
    await scenario(
      'PostgreSQL backends terminated 3×',
      async (ctx) => {
        const db = new URL(ctx.cluster.env.DATABASE_URL!).pathname.slice(1)
        let ended = 0
        for (let i = 0; i < 3; i++) {
          ended += await terminateBackends(db)
          await sleep(1000)
        }
        ctx.restoredAt = Date.now()
        ctx.notes = `${ended} sessions ended`
      },
      { recovery: 'drain' },
    )
  })

  it('PostgreSQL read-only for 10 s (a failover’s aftermath): nothing in the intake dead letters', async () => {
    await scenario(
      'PostgreSQL read-only for 10 s',
      async (ctx) => {
        const db = new URL(ctx.cluster.env.DATABASE_URL!).pathname.slice(1)
        await setDatabaseReadOnly(db, true)
        await sleep(10_000)
        await setDatabaseReadOnly(db, false)
        ctx.restoredAt = Date.now()
        const dead = await withBroker((ch) => ch.checkQueue(`${ctx.cluster.env.SABT_MQ_PREFIX}.intake.dead`))
        expect(dead.messageCount, 'registrations in the intake dead letters').toBe(0)
        ctx.notes = '0 in the intake dead letters'
      },
      { recovery: 'drain', loadMs: 20_000 },
    )
  })

  it('the network to a provider cut and restored', async () => {
    const net: { proxy?: TcpProxy } = {}
    try {
      await scenario(
        'provider network cut for 5 s',
        async (ctx) => {
          await net.proxy!.cut()
          await sleep(5000)
          await net.proxy!.restore()
          ctx.restoredAt = Date.now()
        },
        {
          recovery: 'drain',
          // The checker reaches the provider through a TCP proxy the test can cut.
          setup: async (cluster) => {
            const proxy = new TcpProxy('127.0.0.1', cluster.simulatorPort)
            net.proxy = proxy
            await proxy.start()
            return { checker: { SABT_IDENTITY_URL: proxy.url('http', '/identity') } }
          },
        },
      )
    } finally {
      await net.proxy?.close()
    }
  })

  it('a provider answering 10× slower for a minute: nothing lost, the backlog drains', async () => {
    await scenario(
      'provider 10× slower for 60 s',
      async (ctx) => {
        const sim = `http://127.0.0.1:${ctx.cluster.simulatorPort}`
        const put = (k: object) =>
          fetch(`${sim}/admin/providers/identity`, {
            method: 'PUT',
            headers: {
              authorization: `Bearer ${ctx.cluster.env.SABT_ADMIN_TOKEN}`,
              'content-type': 'application/json',
            },
            body: JSON.stringify(k),
          })
        expect((await put({ latency_median_ms: 50, latency_p99_ms: 200 })).status).toBe(200)
        await sleep(SLOW_MS)
        expect((await put({ latency_median_ms: 5, latency_p99_ms: 20 })).status).toBe(200)
        ctx.restoredAt = Date.now()
      },
      { recovery: 'drain', loadMs: SLOW_MS + 8000 },
    )
  })
  it('a check queue at its bound for 30 s: 0 records left unsettled', async () => {
    // identity → mobile and eligibility, served by two checker processes. The mobile checker is
    // killed and its queue bounded at 20 messages for 30 s: it fills, then refuses every mobile
    // follow-up identity sends, while the eligibility ones go. Those messages are held (only the
    // refused moves retried), not requeued whole — which sent eligibility again for records
    // already moved — into the delivery limit and dead-lettered unbooked.
    const config = chaosConfig((doc) => {
      doc.checks.mobile = { ...doc.checks.identity, provider: 'mobile', url: simulatorUrl('/mobile') }
      doc.checks.eligibility = {
        ...doc.checks.identity,
        provider: 'eligibility',
        url: simulatorUrl('/eligibility'),
      }
      doc.campaigns.chaos!.checks = [
        'identity',
        { name: 'mobile', after: ['identity'] },
        { name: 'eligibility', after: ['identity'] },
      ]
    })
    const fast = { latency_median_ms: 5, latency_p99_ms: 20 }
    const bound: { lift?: () => Promise<void> } = {}
    const mobileEnv = { SABT_CHECKS: 'mobile' }
    try {
      const row = await scenario(
        'mobile queue at its bound for 30 s',
        async (ctx) => {
          const queue = `${ctx.cluster.env.SABT_MQ_PREFIX}.check.mobile`
          bound.lift = await boundQueue(queue, `${ctx.cluster.env.SABT_MQ_PREFIX}-bound`, 20)
          await ctx.cluster.kill('checker-mobile')
          const full = Date.now() + 30_000
          while ((await depth(queue)) < 20 && Date.now() < full) await sleep(200)
          expect(await depth(queue)).toBeGreaterThanOrEqual(20) // at its bound
          await sleep(30_000)
          // …and refusing what identity sends it all along.
          const refused = await counter(ctx.cluster, 'checker', 'sabt_publish_confirms_total', {
            publisher: 'checker',
            result: 'nack',
          })
          expect(refused).toBeGreaterThan(0)
          await bound.lift()
          await ctx.cluster.start('checker-mobile', 'checker', mobileEnv)
          ctx.restoredAt = Date.now()
          ctx.notes =
            'identity → mobile + eligibility; the mobile queue full (20 messages, reject-publish) and unconsumed for 30 s'
        },
        {
          recovery: 'drain',
          loadMs: 40_000,
          env: {
            SABT_CONFIG: config,
            SABT_SIMULATOR_KNOBS: JSON.stringify({ identity: fast, mobile: fast, eligibility: fast }),
          },
          setup: async (cluster) => {
            await cluster.start('checker-mobile', 'checker', mobileEnv)
            return { checker: { SABT_CHECKS: 'identity,eligibility' }, 'checker-mobile': mobileEnv }
          },
        },
      )
      // Eligibility messages for records whose eligibility was already answered: duplicate chains.
      const again = await counter(current!.cluster, 'checker', 'sabt_check_attempts_total', {
        check: 'eligibility',
        result: 'already_done',
      })
      row.notes += `; eligibility sent again for ${again} answered record(s)`
    } finally {
      await bound.lift?.().catch(() => {})
    }
  })

  it('the callback receiver down while the checker is SIGKILLed: every final verdict called back exactly once', async () => {
    const receiver = new CallbackReceiver()
    await receiver.up()
    const config = chaosConfig((doc) => {
      doc.campaigns.chaos!.callback_url = receiver.url
    })
    try {
      const row = await scenario(
        'callback receiver down + SIGKILL checker',
        async (ctx) => {
          await receiver.down()
          await sleep(2000)
          await ctx.cluster.kill('checker')
          await sleep(2000)
          await ctx.cluster.start('checker', 'checker')
          await sleep(2000)
          await receiver.up()
          ctx.restoredAt = Date.now()
        },
        { recovery: 'drain', env: { SABT_CONFIG: config } },
      )
      const finals = await callbacksSettled(current!.cluster)
      const expected = new Set(finals.map((id) => `${id}:verdict`))
      const unexpected = [...receiver.taken.keys()].filter((k) => !expected.has(k))
      const missing = [...expected].filter((k) => !receiver.taken.has(k))
      row.notes =
        `${finals.length} verdict callbacks, all delivered; ${receiver.repeated()} delivered again ` +
        '(same Idempotency-Key, after the kill)'
      // Exactly once after recovery: the receiver was down through the kill, so a key taken twice
      // is one callback sent twice by the recovered checker (e.g. its message and the sweeper's copy).
      expect({
        missing: missing.length,
        unexpected: unexpected.length,
        repeated: receiver.repeated(),
      }).toEqual({
        missing: 0,
        unexpected: 0,
        repeated: 0,
      })
      expect(finals.length).toBeGreaterThan(0)
    } finally {
      await receiver.down()
    }
  })

  it('a checker started with a configuration that lacks the campaign: 0 wrong verdicts', async () => {
    const lacking = chaosConfig((doc) => {
      doc.campaigns = { other: { title: 'Other', checks: ['identity'] } }
    })
    let held = 0
    const row = await scenario(
      'checker without the campaign for 8 s',
      async (ctx) => {
        await ctx.cluster.start('checker-stale', 'checker', { SABT_CONFIG: lacking })
        await sleep(8000)
        held = await counter(ctx.cluster, 'checker-stale', 'sabt_checks_held_total')
        await ctx.cluster.kill('checker-stale')
        ctx.restoredAt = Date.now()
      },
      { recovery: 'drain' },
    )
    const wrong = await wrongVerdicts(current!.cluster, current!.load!)
    row.notes = `the second checker held ${held} record(s) it has no configuration for; ${wrong} wrong verdicts`
    expect(wrong).toBe(0)
    expect(held).toBeGreaterThan(0) // it did take messages, and decided none of them
  })
})
