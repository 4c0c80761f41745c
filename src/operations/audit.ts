import { recordAudit } from '../db/operators.js'
import type { Pool } from '../db/pool.js'
import type { Logger } from '../observability/logger.js'
import type { OperatorLookup } from './operator-lookup.js'

/** Who did it: the operator's name (or `bootstrap`, or `cli:<user>`) and the client's address. */
export interface Actor {
  operator: string
  client: string | null
}

/**
 * Who looked at whose record: a row in operator_audit (and a log line) with the registration ids
 * found, never the query — a national id searched for is not written anywhere. Awaited before the
 * answer goes out: a lookup that cannot be audited is not answered.
 */
export async function auditLookup(
  pool: Pool,
  log: Logger,
  actor: Actor,
  found: OperatorLookup,
): Promise<void> {
  const detail = {
    by: found.kind === 'records' || found.kind === 'not_found' ? found.by : 'id',
    result: found.kind,
    registration_ids:
      found.kind === 'records'
        ? found.records.map((r) => r.id)
        : found.kind === 'duplicate' || found.kind === 'queued' || found.kind === 'waiting'
          ? [found.id]
          : [],
  }
  await recordAudit(pool, { operator: actor.operator, action: 'lookup', client: actor.client, detail })
  log.info({ event: 'admin.lookup', operator: actor.operator, ip: actor.client, ...detail })
}

/** A dead-letter replay: which dead letters, and what came of it. */
export async function auditReplay(
  pool: Pool,
  log: Logger,
  actor: Actor,
  detail: Record<string, unknown>,
): Promise<void> {
  await recordAudit(pool, { operator: actor.operator, action: 'replay', client: actor.client, detail })
  log.info({ event: 'admin.replay', operator: actor.operator, ip: actor.client, ...detail })
}
