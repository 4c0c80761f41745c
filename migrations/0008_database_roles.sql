-- Up Migration

-- Least privilege in the database: one PostgreSQL role per Sabt role, with only the grants that
-- role's statements need. The superuser (or the database owner) runs `sabt migrate` and the
-- operator's CLI commands (keys, erase, reseal) and nothing else.
--
-- The roles are NOLOGIN here: no password lives in the repository. `sabt migrate` gives a role
-- LOGIN and its password when SABT_DB_<ROLE>_PASSWORD is set (docs/security.md), so compose hands
-- each role's container its own DATABASE_URL. Roles belong to the whole cluster, not to this
-- database: a second database (tests make many, concurrently) finds them already there.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['sabt_gateway', 'sabt_recorder', 'sabt_checker', 'sabt_status'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL; -- created by a concurrent migration of another database
      END;
    END IF;
  END LOOP;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO sabt_gateway, sabt_recorder, sabt_checker, sabt_status',
                 current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO sabt_gateway, sabt_recorder, sabt_checker, sabt_status;

-- gateway: the partner keys (hashed secrets) for batch intake, nothing of any registration.
GRANT SELECT ON api_keys TO sabt_gateway;

-- recorder: writes a batch (records, duplicates, waiting submissions of scarce campaigns).
GRANT SELECT ON campaigns TO sabt_recorder;
GRANT SELECT, INSERT, UPDATE ON registrations, duplicates, waiting TO sabt_recorder;

-- checker: check results, the check cache, shared rate schedules, verdicts, callbacks, and a
-- place handed on to the earliest waiting submission when its holder ends rejected or failed.
GRANT SELECT ON campaigns TO sabt_checker;
GRANT SELECT, INSERT, UPDATE ON registrations TO sabt_checker;
GRANT SELECT, INSERT, UPDATE, DELETE ON check_results, check_cache, rate_schedules, waiting, duplicates
  TO sabt_checker;

-- status: reads for the status API and dashboard; the operator's replay (check results reset,
-- a place reclaimed, a callback owed again) and the retention sweep (personal data erased,
-- waiting submissions of an erased campaign kept as duplicates).
GRANT SELECT ON campaigns, registrations, duplicates, waiting, check_results TO sabt_status;
GRANT UPDATE ON registrations, check_results TO sabt_status;
GRANT INSERT ON duplicates TO sabt_status;
GRANT DELETE ON waiting TO sabt_status;

-- Down Migration
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM sabt_gateway, sabt_recorder, sabt_checker, sabt_status;
REVOKE USAGE ON SCHEMA public FROM sabt_gateway, sabt_recorder, sabt_checker, sabt_status;
