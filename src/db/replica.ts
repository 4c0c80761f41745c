import type { Pool } from './pool.js'

/** How far the read replica (DATABASE_READ_URL) is behind the primary, for the dashboard. */
export interface ReplicaLag {
  at: string
  /** False: the read database is not a standby at all (DATABASE_READ_URL names a primary). */
  standby: boolean
  /** WAL the primary has written that the replica has not replayed yet. */
  bytes: number | null
  /** Seconds since the last transaction the replica replayed; 0 when it has replayed all it received. */
  seconds: number | null
  /** False while replay is paused (pg_wal_replay_pause). */
  replaying: boolean
}

/** An LSN ("16/B374D848") as a number of bytes. */
export function lsnBytes(lsn: string): number {
  const [hi, lo] = lsn.split('/')
  return Number.parseInt(hi!, 16) * 2 ** 32 + Number.parseInt(lo!, 16)
}

export async function replicaLag(primary: Pool, replica: Pool): Promise<ReplicaLag> {
  const [p, r] = await Promise.all([
    primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'),
    replica.query<{ standby: boolean; replay: string | null; seconds: number | null; paused: boolean }>(
      `SELECT pg_is_in_recovery() AS standby,
              pg_last_wal_replay_lsn()::text AS replay,
              CASE WHEN NOT pg_is_in_recovery() THEN NULL
                   WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                   ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS seconds,
              pg_is_in_recovery() AND pg_is_wal_replay_paused() AS paused`,
    ),
  ])
  const row = r.rows[0]!
  const bytes =
    row.standby && row.replay ? Math.max(0, lsnBytes(p.rows[0]!.lsn) - lsnBytes(row.replay)) : null
  return {
    at: new Date().toISOString(),
    standby: row.standby,
    bytes,
    seconds: row.seconds === null ? null : Number(row.seconds),
    replaying: !row.paused,
  }
}
