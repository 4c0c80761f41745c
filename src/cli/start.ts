import { parseArgs } from 'node:util'
import { defaultConfigPath, loadConfigFile } from '../config/campaigns.js'
import { resolveSecrets, secretsFor } from '../config/secrets.js'
import { parseRoles, startSabt } from '../runtime/start.js'
import { announceWhenReady } from '../runtime/startup-banner.js'
import type { CliContext } from './context.js'

/** `sabt start`: the roles in this process, until SIGTERM/SIGINT (then a graceful stop). */
export async function runStart(rest: string[], { env, log }: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: rest,
    options: { roles: { type: 'string', default: 'all' }, migrate: { type: 'boolean', default: false } },
  })
  const roles = parseRoles(values.roles!)
  const config = loadConfigFile(env.SABT_CONFIG ?? defaultConfigPath())
  // A gateway alone holds no secret (it never opens personal data): don't demand any.
  const needs = secretsFor(roles, env)
  const secrets = needs.length ? resolveSecrets(env, needs) : null
  const running = await startSabt({ roles, env, config, log, migrate: values.migrate ?? false })
  log.info(
    { event: 'started', roles, url: running.url },
    `Sabt ${roles.join(', ')} listening on ${running.url}`,
  )
  // "Sabt is up" only once /readyz would answer 200; until then, what it waits for.
  if (process.stdout.isTTY || roles.length > 1)
    announceWhenReady(
      running,
      roles,
      // Printed only when it was generated here: one set in the environment is someone's secret.
      secrets?.generatedFile && secrets.adminTokenGenerated ? secrets.generatedFile : null,
      secrets?.adminToken ?? null,
    )
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
