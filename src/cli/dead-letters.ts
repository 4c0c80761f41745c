import { userInfo } from 'node:os'
import { parseArgs } from 'node:util'
import { defaultConfigPath, loadConfigFile } from '../config/campaigns.js'
import { createPool } from '../db/pool.js'
import { MqClient } from '../mq/connection.js'
import { Publisher } from '../mq/publisher.js'
import { Metrics } from '../observability/metrics.js'
import { auditReplay, deadList, intakeDeadList, replayDead, replayIntakeDead } from '../operations/index.js'
import { topologyOptions } from '../runtime/start.js'
import type { CliContext } from './context.js'

/** `sabt dead list|replay [--check X | --intake]`: the dead letters of checks and of the intake. */
export async function runDead(rest: string[], { env, log }: CliContext): Promise<number> {
  const [sub, ...args] = rest
  const { values } = parseArgs({
    args,
    options: { check: { type: 'string' }, intake: { type: 'boolean' }, limit: { type: 'string' } },
  })
  const limit = values.limit === undefined ? undefined : Number(values.limit)
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    process.stderr.write('sabt dead: --limit must be a positive integer\n')
    return 2
  }
  if (sub !== 'list' && sub !== 'replay') {
    process.stderr.write('usage: sabt dead list|replay [--check X | --intake] [--limit N]\n')
    return 2
  }
  if (values.intake && values.check) {
    process.stderr.write('sabt dead: --intake and --check name different dead letters; give one\n')
    return 2
  }
  const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
  if (values.check && values.check !== 'callback' && !config.checks.has(values.check)) {
    process.stderr.write(
      `sabt dead: no check named ${values.check} (checks: ${[...config.checks.keys()].join(', ')}, callback)\n`,
    )
    return 2
  }
  const pool = createPool(env.DATABASE_URL, { max: 2, log, name: 'sabt-cli' })
  const mq = new MqClient(env.AMQP_URL, topologyOptions(env, config), log, 'sabt-cli')
  await mq.start()
  try {
    await mq.waitForConnect(10_000)
    if (values.intake && sub === 'list') {
      process.stdout.write(`${JSON.stringify(await intakeDeadList(mq, { limit: limit ?? 50 }), null, 2)}\n`)
      return 0
    }
    if (sub === 'list') {
      const list = await deadList(mq, pool, { check: values.check, limit: limit ?? 50 })
      process.stdout.write(`${JSON.stringify(list, null, 2)}\n`)
      return 0
    }
    const publisher = new Publisher(
      mq,
      { name: 'cli', confirmTimeoutMs: env.SABT_CONFIRM_TIMEOUT_MS, maxInFlight: 1000 },
      new Metrics({ defaultMetrics: false }),
      log,
    )
    await publisher.start()
    const result = values.intake
      ? await replayIntakeDead({ mq, publisher, log }, { limit })
      : await replayDead({ mq, pool, publisher, config, log }, { check: values.check, limit })
    await publisher.close()
    await auditReplay(
      pool,
      log,
      { operator: `cli:${userInfo().username}`, client: null },
      {
        kind: values.intake ? 'intake' : 'check',
        ...(values.check ? { check: values.check } : {}),
        ...(limit ? { limit } : {}),
        ...result,
      },
    )
    process.stdout.write(`${JSON.stringify(result)}\n`)
    return 0
  } finally {
    await mq.close()
    await pool.end()
  }
}
