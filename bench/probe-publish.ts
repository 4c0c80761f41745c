/**
 * What one confirmed intake-sized publish costs, without HTTP: amqplib's confirm channel,
 * persistent and mandatory as the gateway publishes, to a quorum queue of its own, `lanes`
 * publishes in flight at a time (each waits for its confirm, as a gateway lane does). Prints the
 * publisher's CPU per message (user, system), RabbitMQ's, and the confirm round trip.
 *
 *   npx tsx bench/probe-publish.ts [lanes=1] [bytes=1200] [seconds=8]
 */
import amqp from 'amqplib'
import { AMQP } from './lib/sabt.js'
import { cpuSeconds, cpuSplit, rabbitPid } from './lib/system.js'

const lanes = Number(process.argv[2] ?? 1)
const bytes = Number(process.argv[3] ?? 1200)
const seconds = Number(process.argv[4] ?? 8)

const conn = await amqp.connect(AMQP)
const ch = await conn.createConfirmChannel()
const queue = `bench_probe_publish_${process.pid}`
await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } })
const body = Buffer.alloc(bytes, 'x')
const publish = (n: number) =>
  new Promise<void>((resolve, reject) =>
    ch.publish(
      '',
      queue,
      body,
      { persistent: true, mandatory: true, messageId: `m${n}`, contentType: 'application/json' },
      (err: unknown) => (err ? reject(err) : resolve()),
    ),
  )
try {
  const rabbit = rabbitPid()
  const [c0, r0] = [cpuSplit(process.pid)!, rabbit ? cpuSeconds(rabbit) : null]
  let n = 0
  const until = Date.now() + seconds * 1000
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (Date.now() < until) await publish(n++)
    }),
  )
  const [c1, r1] = [cpuSplit(process.pid)!, rabbit ? cpuSeconds(rabbit) : null]
  const us = (s: number) => Math.round((s / n) * 1e6)
  const line = {
    lanes,
    bytes,
    messages_per_s: Math.round(n / seconds),
    publisher_user_us: us(c1.user - c0.user),
    publisher_sys_us: us(c1.sys - c0.sys),
    rabbitmq_us: r0 !== null && r1 !== null ? us(r1 - r0) : null,
    confirm_rtt_ms: Math.round(((seconds * 1000 * lanes) / n) * 100) / 100,
  }
  process.stdout.write(`${JSON.stringify(line)}\n`)
} finally {
  await ch.deleteQueue(queue).catch(() => {})
  await conn.close()
}
