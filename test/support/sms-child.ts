// A checker process (with the SMS outbox) the test can SIGKILL mid-batch: env and configuration
// as JSON arguments; says "ready" once started.
import { buildConfig } from '../../src/config/campaigns.js'
import { loadEnv } from '../../src/config/env.js'
import { createLogger } from '../../src/observability/logger.js'
import { startSabt } from '../../src/runtime/start.js'

const [envJson, configJson] = process.argv.slice(2)
const env = loadEnv(JSON.parse(envJson!) as Record<string, string>)
const config = buildConfig(JSON.parse(configJson!))
const running = await startSabt({
  roles: ['checker'],
  env,
  config,
  log: createLogger({ level: 'error' }),
  migrate: false,
  listen: false,
})
await running.mq?.waitForConnect()
process.stdout.write('ready\n')
