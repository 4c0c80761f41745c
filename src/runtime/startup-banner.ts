import { address } from '../config/startup.js'
import type { Running } from './start.js'

const WAITING: Record<string, (r: Running) => string> = {
  broker: (r) =>
    `sabt: waiting for RabbitMQ at ${address(r.env.AMQP_URL, 5672)} (AMQP_URL): start it (rabbitmq-server -detached), or set AMQP_URL to a running broker — nothing is accepted until then\n`,
  intake: () => 'sabt: waiting for the intake queue to take messages (RabbitMQ is up)\n',
  database: (r) =>
    `sabt: waiting for PostgreSQL at ${address(r.env.DATABASE_URL, 5432)} (DATABASE_URL): start it, or set DATABASE_URL to one that runs\n`,
  database_read: (r) =>
    `sabt: waiting for the read replica at ${address(r.env.DATABASE_READ_URL ?? '', 5432)} (DATABASE_READ_URL)\n`,
}

/**
 * Says "Sabt is up" only once /readyz would answer 200; until then, one line per component it is
 * waiting for (once each), naming where and which variable sets it.
 */
export function announceWhenReady(
  running: Running,
  roles: readonly string[],
  generatedFile: string | null,
  adminToken: string | null,
): void {
  const said = new Set<string>()
  const base = running.url?.replace('0.0.0.0', '127.0.0.1') ?? ''
  const poll = async (): Promise<void> => {
    const r = await running.readiness().catch(() => null)
    if (r?.ready) {
      process.stderr.write(
        `\nSabt is up (${roles.join(', ')}): ${base}\n  ready:   ${base}/readyz\n  API:     ${base}/docs\n` +
          (roles.includes('status')
            ? `  dashboard: ${base}/dashboard (sign in with your operator token, or the admin token before the first operator)\n`
            : '') +
          (generatedFile ? `  admin token (generated, in ${generatedFile}): ${adminToken}\n` : '') +
          '\n',
      )
      return
    }
    for (const [component, state] of Object.entries(r?.components ?? {}))
      if (state === 'down' && !said.has(component) && WAITING[component]) {
        // The intake waits on the broker: one line for the cause is enough.
        if (component === 'intake' && r?.components.broker === 'down') continue
        said.add(component)
        process.stderr.write(WAITING[component](running))
      }
    setTimeout(() => void poll(), said.size === 0 ? 200 : 500).unref()
  }
  // A moment for the first connection, so a broker that is there is not reported as missing.
  setTimeout(() => void poll(), 300).unref()
}
