-- Up Migration

-- One account per person at the operator surface (dashboard, admin API). The token is shown once,
-- at `sabt operators add`; only its SHA-256 is kept (256 random bits: nothing to brute-force).
CREATE TABLE operators (
  id            text PRIMARY KEY,              -- the public part of the token: sabt_op_<id>_<secret>
  name          text NOT NULL,
  token_sha256  bytea NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  revoked_at    timestamptz
);
-- A name belongs to one active account at a time (a revoked name can be issued again).
CREATE UNIQUE INDEX operators_active_name ON operators (name) WHERE revoked_at IS NULL;

-- Sessions live here, not in the cookie: logout and revoke end them at once. The cookie holds a
-- random 256-bit value; only its SHA-256 is kept. operator_id NULL: the bootstrap token's session.
CREATE TABLE operator_sessions (
  id_sha256     bytea PRIMARY KEY,
  operator_id   text REFERENCES operators (id),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  ended_at      timestamptz
);
CREATE INDEX operator_sessions_expires ON operator_sessions (expires_at);

-- Who looked up whom, who replayed what: one row per action, with the operator's name (never the
-- national id searched for: the registration ids found say whose records were seen).
CREATE TABLE operator_audit (
  id            bigserial PRIMARY KEY,
  at            timestamptz NOT NULL DEFAULT now(),
  operator      text NOT NULL,
  action        text NOT NULL,
  client        text,
  detail        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX operator_audit_at ON operator_audit (at);

-- The status role (its own PostgreSQL login, migrations/0008_database_roles.sql) signs operators
-- in, keeps their sessions and writes the audit; it reads no token and changes no account (that is
-- `sabt operators`, run as the owner). 0008 creates the roles too; made here first if missing, so
-- these grants have someone to go to (roles belong to the cluster: another database may have them).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sabt_status') THEN
    BEGIN
      CREATE ROLE sabt_status NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL; -- created by a concurrent migration of another database
    END;
  END IF;
END
$$;
GRANT SELECT (id, name, token_sha256, revoked_at) ON operators TO sabt_status;
GRANT SELECT, INSERT, UPDATE, DELETE ON operator_sessions TO sabt_status;
GRANT INSERT ON operator_audit TO sabt_status;
GRANT USAGE ON SEQUENCE operator_audit_id_seq TO sabt_status;

-- Down Migration
REVOKE ALL ON operators, operator_sessions, operator_audit FROM sabt_status;
DROP TABLE operator_audit;
DROP TABLE operator_sessions;
DROP TABLE operators;
