#!/usr/bin/env node
import { runDead } from './cli/dead-letters.js'
import { runDraw } from './cli/draw.js'
import { runErase } from './cli/erase.js'
import { runKeys } from './cli/keys.js'
import { runMigrate } from './cli/migrate.js'
import { runOperators } from './cli/operators.js'
import { runReindex } from './cli/reindex.js'
import { runReseal } from './cli/reseal.js'
import { runStart } from './cli/start.js'
import { runStatus } from './cli/status.js'
import { ConfigError, loadEnv } from './config/env.js'
import { createLogger } from './observability/logger.js'

const USAGE = `sabt — surge-proof registration intake

usage:
  sabt start [--roles gateway,recorder,checker,status,simulator|all] [--migrate]
  sabt migrate
  sabt status <registration-id>
  sabt dead list [--check X | --intake] [--limit N]
  sabt dead replay [--check X | --intake] [--limit N]
  sabt keys create --name NAME [--rate RECORDS_PER_SECOND]   (prints the key once)
  sabt keys list | sabt keys revoke <id>
  sabt operators add NAME | list | revoke NAME   personal operator tokens (printed once)
  sabt erase --campaign X [--all]   erase personal data past the campaign's retention (or all of it)
  sabt reseal                       re-seal personal data under the current key (SABT_DATA_KEY_ID)
  sabt reindex                      rotate the blind index to SABT_INDEX_KEY_NEW (offline: docs/security.md)
  sabt draw commit|run|export|verify|release …   a scarce campaign's lottery (sabt draw --help)

Configuration comes from the environment (see README: DATABASE_URL, AMQP_URL, PORT, SABT_CONFIG, …).`

/** The `sabt` command: each subcommand is a module of src/cli/. */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`)
    return command ? 0 : 2
  }
  const env = loadEnv()
  const ctx = { env, log: createLogger({ level: env.LOG_LEVEL }) }

  switch (command) {
    case 'start':
      return runStart(rest, ctx)
    case 'migrate':
      return runMigrate(rest, ctx)
    case 'status':
      return runStatus(rest, ctx)
    case 'dead':
      return runDead(rest, ctx)
    case 'keys':
      return runKeys(rest, ctx)
    case 'operators':
      return runOperators(rest, ctx)
    case 'erase':
      return runErase(rest, ctx)
    case 'reseal':
      return runReseal(rest, ctx)
    case 'reindex':
      return runReindex(rest, ctx)
    case 'draw':
      return runDraw(rest, ctx)
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
