#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { defaultConfigPath, loadConfigFile } from './config/campaigns.js'
import { ConfigError, loadEnv } from './config/env.js'
import { resolveSecrets } from './config/secrets.js'
import { createApiKey, listApiKeys, revokeApiKey } from './db/api-keys.js'
import { migrate } from './db/migrate.js'
import { eraseCampaign, resealAll } from './db/personal-data.js'
import { createPool } from './db/pool.js'
import { syncCampaigns } from './db/registrations.js'
import { MqClient } from './mq/connection.js'
import { Publisher } from './mq/publisher.js'
import { createLogger } from './observability/logger.js'
import { Metrics } from './observability/metrics.js'
import {
  deadList,
  intakeDeadList,
  lookupRegistration,
  replayDead,
  replayIntakeDead,
} from './operations/index.js'
import { Sealer } from './privacy/sealing.js'
import { parseRoles, startSabt, topologyOptions } from './runtime/start.js'
import { announceWhenReady } from './runtime/startup-banner.js'

const USAGE = `sabt — surge-proof registration intake

usage:
  sabt start [--roles gateway,recorder,checker,status,simulator|all] [--migrate]
  sabt migrate
  sabt status <registration-id>
  sabt dead list [--check X | --intake] [--limit N]
  sabt dead replay [--check X | --intake] [--limit N]
  sabt keys create --name NAME [--rate RECORDS_PER_SECOND]   (prints the key once)
  sabt keys list | sabt keys revoke <id>
  sabt erase --campaign X [--all]   erase personal data past the campaign's retention (or all of it)
  sabt reseal                       re-seal personal data under the current key (SABT_DATA_KEY_ID)

Configuration comes from the environment (see README: DATABASE_URL, AMQP_URL, PORT, SABT_CONFIG, …).`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return command ? 0 : 2
  }
  const env = loadEnv()
  const log = createLogger({ level: env.LOG_LEVEL })

  switch (command) {
    case 'start': {
      const { values } = parseArgs({
        args: rest,
        options: { roles: { type: 'string', default: 'all' }, migrate: { type: 'boolean', default: false } },
      })
      const roles = parseRoles(values.roles!)
      const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
      // A gateway alone holds no secret (it never opens personal data): don't demand any.
      const secrets = roles.some((r) => r !== 'gateway') ? resolveSecrets(env) : null
      const running = await startSabt({ roles, env, config, log, migrate: values.migrate ?? false })
      log.info(
        { event: 'started', roles, url: running.url },
        `Sabt ${roles.join(', ')} listening on ${running.url}`,
      )
      if (process.stdout.isTTY || roles.length > 1)
        announceWhenReady(running, roles, secrets?.generatedFile ?? null, secrets?.adminToken ?? null)
      await new Promise<void>((resolve) => {
        const onSignal = (signal: string) => {
          log.info({ event: 'stopping', signal }, 'stopping: finishing in-flight work')
          const timer = setTimeout(() => {
            log.error({ event: 'stop_timeout' }, 'graceful stop timed out; exiting')
            process.exit(1)
          }, env.SABT_SHUTDOWN_TIMEOUT_MS)
          timer.unref()
          running.stop().then(resolve, resolve)
        }
        process.once('SIGTERM', onSignal)
        process.once('SIGINT', onSignal)
      })
      log.info({ event: 'stopped' }, 'stopped')
      return 0
    }
    case 'migrate': {
      const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
      const applied = await migrate(env.DATABASE_URL, log)
      const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-migrate' })
      await syncCampaigns(pool, config.campaigns.values())
      await pool.end()
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n')
      return 0
    }
    case 'status': {
      const id = rest[0]
      if (!id) {
        process.stderr.write('usage: sabt status <registration-id>\n')
        return 2
      }
      const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
      const pool = createPool(env.DATABASE_READ_URL ?? env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
      try {
        const view = await lookupRegistration(pool, config, id, env.SABT_QUEUED_WINDOW_S * 1000)
        const { kind, ...body } = view
        process.stdout.write(
          `${JSON.stringify(kind === 'unknown' ? { id, status: 'not_found' } : body, null, 2)}\n`,
        )
        return kind === 'unknown' ? 1 : 0
      } finally {
        await pool.end()
      }
    }
    case 'dead': {
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
          process.stdout.write(
            `${JSON.stringify(await intakeDeadList(mq, { limit: limit ?? 50 }), null, 2)}\n`,
          )
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
        process.stdout.write(`${JSON.stringify(result)}\n`)
        return 0
      } finally {
        await mq.close()
        await pool.end()
      }
    }
    case 'keys': {
      const [sub, ...args] = rest
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { name: { type: 'string' }, rate: { type: 'string', default: '100' } },
      })
      const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
      try {
        if (sub === 'create') {
          const rate = Number(values.rate)
          if (!values.name || !(Number.isInteger(rate) && rate > 0)) {
            process.stderr.write('usage: sabt keys create --name NAME [--rate RECORDS_PER_SECOND]\n')
            return 2
          }
          const k = await createApiKey(pool, values.name, rate)
          process.stdout.write(
            `${JSON.stringify({ id: k.id, name: values.name, records_per_second: rate, key: k.key })}\n`,
          )
          process.stderr.write('Keep the key now: only its hash is stored.\n')
          return 0
        }
        if (sub === 'list') {
          process.stdout.write(`${JSON.stringify(await listApiKeys(pool), null, 2)}\n`)
          return 0
        }
        if (sub === 'revoke' && positionals[0]) {
          const ok = await revokeApiKey(pool, positionals[0])
          process.stdout.write(ok ? `revoked ${positionals[0]}\n` : `no active key ${positionals[0]}\n`)
          return ok ? 0 : 1
        }
        process.stderr.write('usage: sabt keys create|list|revoke\n')
        return 2
      } finally {
        await pool.end()
      }
    }
    case 'erase': {
      const { values } = parseArgs({
        args: rest,
        options: { campaign: { type: 'string' }, all: { type: 'boolean', default: false } },
      })
      const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
      const campaign = values.campaign ? config.campaigns.get(values.campaign) : undefined
      if (!campaign) {
        process.stderr.write(
          `usage: sabt erase --campaign X [--all]  (campaigns: ${[...config.campaigns.keys()].join(', ')})\n`,
        )
        return 2
      }
      if (!values.all && campaign.retentionDays === null) {
        process.stderr.write(
          `campaign ${campaign.slug} declares no retention_days: nothing expires (use --all to erase everything)\n`,
        )
        return 2
      }
      const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
      try {
        const erased = await eraseCampaign(pool, campaign.slug, {
          retentionDays: campaign.retentionDays,
          all: values.all ?? false,
        })
        process.stdout.write(`${JSON.stringify({ campaign: campaign.slug, erased })}\n`)
        return 0
      } finally {
        await pool.end()
      }
    }
    case 'reseal': {
      const secrets = resolveSecrets(env)
      const pool = createPool(env.DATABASE_URL, { max: 1, log, name: 'sabt-cli' })
      try {
        const resealed = await resealAll(pool, new Sealer(secrets.dataKeys))
        process.stdout.write(`${JSON.stringify({ key_id: secrets.dataKeys.currentKeyId, resealed })}\n`)
        return 0
      } finally {
        await pool.end()
      }
    }
    default:
      process.stderr.write(`unknown command ${command}\n\n${USAGE}\n`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`sabt: ${err.message}\n`)
    else process.stderr.write(`sabt: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
