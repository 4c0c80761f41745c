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

-- Down Migration
DROP TABLE operator_audit;
DROP TABLE operator_sessions;
DROP TABLE operators;
