-- Up Migration

-- One rate schedule per check, shared by every checker process: GCRA's "theoretical arrival time".
-- A checker leases the next slice of it (a few hundred milliseconds of the check's rate) with one
-- UPDATE, so N checker replicas together stay within the rate configured for the provider.
CREATE TABLE rate_schedules (
  key  text PRIMARY KEY,                       -- check:<name>
  tat  timestamptz NOT NULL
);

-- Down Migration
DROP TABLE rate_schedules;
