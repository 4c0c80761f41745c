import { parseArgs } from 'node:util'
import { createApiKey, listApiKeys, revokeApiKey } from '../db/api-keys.js'
import { createPool } from '../db/pool.js'
import type { CliContext } from './context.js'

/** `sabt keys create|list|revoke`: partner API keys (stored hashed; a key is printed once). */
export async function runKeys(rest: string[], { env, log }: CliContext): Promise<number> {
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
