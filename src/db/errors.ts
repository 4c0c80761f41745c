import pg from 'pg'

/**
 * What a failed database call means for the caller — the one table, by SQLSTATE (never by the
 * message text, which changes with the server's language and version). Also in docs/guarantees.md.
 *
 * | class         | when                                                               | the caller                        |
 * |---------------|--------------------------------------------------------------------|-----------------------------------|
 * | `unavailable` | 08 connection exception · 53 insufficient resources (disk full     | holds the work and backs off: the |
 * |               | 53100, out of memory 53200, too many connections 53300) · 57P01–04 | database as a whole cannot take   |
 * |               | shutdown, crash, cannot connect now · 57014 statement timeout ·    | it now and will again; nothing is |
 * |               | 40001 serialization failure · 40P01 deadlock · 25006 read-only     | dead-lettered, no attempt spent   |
 * |               | transaction (a failover's aftermath) · 55P03 lock not available ·  |                                   |
 * |               | 58 system error (I/O) · 28 authorization · 3D000 no such database ·|                                   |
 * |               | 42501 privilege · 42P01/42703 undefined table or column (a         |                                   |
 * |               | migration not applied yet) · no SQLSTATE at all: the server was    |                                   |
 * |               | never reached (refused, reset, timed out, pool ended)              |                                   |
 * | `data`        | 22 data exception · 23 integrity violation · 54 program limit      | this row is wrong: it alone goes  |
 * |               |                                                                    | to the dead letters               |
 * | `other`       | any other SQLSTATE (internal error, a bug), and any other error    | this row alone is retried a       |
 * |               | (a TypeError of ours, a failed decryption …)                       | bounded number of times           |
 *
 * "Never reached" is the one case without a SQLSTATE: a socket error code, or one of the pg
 * client's own fixed failures (its constants, not server text), listed below.
 */
export type DbErrorClass = 'unavailable' | 'data' | 'other'

const UNAVAILABLE_CLASSES = ['08', '53', '58', '28']
const UNAVAILABLE_CODES = new Set([
  '57P01',
  '57P02',
  '57P03',
  '57P04',
  '57014',
  '40001',
  '40P01',
  '25006',
  '55P03',
  '3D000',
  '42501',
  '42P01',
  '42703',
])
const DATA_CLASSES = ['22', '23', '54']

/** Errors a Node socket reports when the server is not there (no SQLSTATE: never reached). */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
])

/** The pg client's and pool's own failures when the server is gone (they carry no code). */
const CLIENT_FAILURES = [
  'Connection terminated', // also "… unexpectedly", "… due to connection timeout"
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'Query read timeout',
  'Cannot use a pool after calling end on the pool',
]

export function sqlState(err: unknown): string | null {
  if (err instanceof pg.DatabaseError && typeof err.code === 'string') return err.code
  return null
}

export function classifyDbError(err: unknown): DbErrorClass {
  const state = sqlState(err)
  if (state !== null) {
    if (UNAVAILABLE_CODES.has(state) || UNAVAILABLE_CLASSES.includes(state.slice(0, 2))) return 'unavailable'
    if (DATA_CLASSES.includes(state.slice(0, 2))) return 'data'
    return 'other'
  }
  if (!(err instanceof Error)) return 'other'
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && SOCKET_CODES.has(code)) return 'unavailable'
  if (CLIENT_FAILURES.some((m) => err.message.startsWith(m))) return 'unavailable'
  return 'other'
}

/** True when the database as a whole cannot take work right now: hold it and back off. */
export function isDatabaseUnavailable(err: unknown): boolean {
  return classifyDbError(err) === 'unavailable'
}
