-- Up Migration

-- The per-role grants (0008) for the tables that came beside it: operator accounts (0007) and
-- scarce campaigns' draws (0010). A table without a grant here is the superuser's alone.
--
-- status: operators sign in (sessions created, ended, expired ones pruned), their lookups and
-- replays are audited; the dashboard, the public campaign pages and the status API read draws,
-- allocations and releases. Accounts themselves are made and revoked by `sabt operators` (CLI).
GRANT SELECT ON operators TO sabt_status;
GRANT SELECT, INSERT, UPDATE, DELETE ON operator_sessions TO sabt_status;
GRANT INSERT ON operator_audit TO sabt_status;
GRANT USAGE ON SEQUENCE operator_audit_id_seq TO sabt_status;
GRANT SELECT ON draws, allocations, releases TO sabt_status;

-- checker: a scarce campaign's verdict callback carries the allocation.
GRANT SELECT ON draws, allocations TO sabt_checker;

-- Down Migration
REVOKE ALL ON operators, operator_sessions, operator_audit, draws, allocations, releases
  FROM sabt_status, sabt_checker;
REVOKE ALL ON SEQUENCE operator_audit_id_seq FROM sabt_status;
