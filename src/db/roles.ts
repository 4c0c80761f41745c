import pg from 'pg'
import type { Env } from '../config/env.js'
import type { Pool } from './pool.js'

/**
 * The PostgreSQL role of each Sabt role (created NOLOGIN by migrations/0008_database_roles.sql,
 * with only the grants that role's statements need). The superuser runs `sabt migrate` only.
 */
export const DB_ROLES = {
  gateway: 'sabt_gateway',
  recorder: 'sabt_recorder',
  checker: 'sabt_checker',
  status: 'sabt_status',
} as const

export type DbRoleName = keyof typeof DB_ROLES

/** The passwords `sabt migrate` gives the roles, from SABT_DB_<ROLE>_PASSWORD (unset: left as it is). */
export function rolePasswords(env: Env): Partial<Record<DbRoleName, string>> {
  const out: Partial<Record<DbRoleName, string>> = {}
  if (env.SABT_DB_GATEWAY_PASSWORD) out.gateway = env.SABT_DB_GATEWAY_PASSWORD
  if (env.SABT_DB_RECORDER_PASSWORD) out.recorder = env.SABT_DB_RECORDER_PASSWORD
  if (env.SABT_DB_CHECKER_PASSWORD) out.checker = env.SABT_DB_CHECKER_PASSWORD
  if (env.SABT_DB_STATUS_PASSWORD) out.status = env.SABT_DB_STATUS_PASSWORD
  return out
}

/**
 * Lets each role with a password log in with it (ALTER ROLE … LOGIN PASSWORD). Run by `sabt
 * migrate` as the superuser after the migrations, every time: a changed password in the
 * environment is a rotation. The password is sent as a literal (ALTER ROLE takes no parameters)
 * and PostgreSQL stores only its SCRAM verifier. Returns the roles it set.
 */
export async function setRoleLogins(
  pool: Pool,
  passwords: Partial<Record<DbRoleName, string>>,
): Promise<string[]> {
  const set: string[] = []
  for (const [role, password] of Object.entries(passwords) as Array<[DbRoleName, string]>) {
    const name = DB_ROLES[role]
    await pool.query(
      `ALTER ROLE ${pg.escapeIdentifier(name)} WITH LOGIN PASSWORD ${pg.escapeLiteral(password)}`,
    )
    set.push(name)
  }
  return set
}
