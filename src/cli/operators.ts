import type { Env } from '../config/env.js'
import {
  addOperator,
  listOperators,
  OPERATOR_NAME,
  OperatorExistsError,
  revokeOperator,
} from '../db/operators.js'
import { createPool } from '../db/pool.js'
import type { Logger } from '../observability/logger.js'

const USAGE = 'usage: sabt operators add NAME | sabt operators list | sabt operators revoke NAME\n'

/**
 * `sabt operators add NAME` prints the operator's personal token once (only its hash is kept);
 * `list` shows the accounts; `revoke NAME` ends the account and every session of it at once.
 * Whoever runs this holds DATABASE_URL: it needs no token of its own.
 */
export async function runOperators(
  args: string[],
  ctx: { env: Env; log: Logger; out?: (s: string) => void; err?: (s: string) => void },
): Promise<number> {
  const out = ctx.out ?? ((s: string) => process.stdout.write(s))
  const err = ctx.err ?? ((s: string) => process.stderr.write(s))
  const [sub, name, ...extra] = args
  const needsName = sub === 'add' || sub === 'revoke'
  if (!(needsName || sub === 'list') || (needsName && !name) || extra.length > 0 || (!needsName && name)) {
    err(USAGE)
    return 2
  }
  if (needsName && !OPERATOR_NAME.test(name!)) {
    err(
      `sabt operators: a name is 1-64 letters, digits, '.', '_', '@' or '-' (got ${JSON.stringify(name)})\n`,
    )
    return 2
  }
  const pool = createPool(ctx.env.DATABASE_URL, { max: 1, log: ctx.log, name: 'sabt-cli' })
  try {
    if (sub === 'add') {
      try {
        const op = await addOperator(pool, name!)
        out(`${JSON.stringify({ name, id: op.id, token: op.token })}\n`)
        err('Hand the token to its operator now: only its hash is stored. Sign in at /dashboard with it.\n')
        return 0
      } catch (e) {
        if (!(e instanceof OperatorExistsError)) throw e
        err(`sabt operators: ${e.message} (revoke it first to issue a new token)\n`)
        return 1
      }
    }
    if (sub === 'list') {
      out(`${JSON.stringify(await listOperators(pool), null, 2)}\n`)
      return 0
    }
    const ok = await revokeOperator(pool, name!)
    out(ok ? `revoked ${name}: its sessions are ended\n` : `no active operator ${name}\n`)
    return ok ? 0 : 1
  } finally {
    await pool.end()
  }
}
