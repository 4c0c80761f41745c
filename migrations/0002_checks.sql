-- Up Migration

-- A provider's answer kept for its cache TTL, keyed by a keyed hash of the exact input the
-- provider was asked (no personal data in clear): the same question within the TTL — another
-- campaign, a replay — reuses the answer instead of spending paid quota.
CREATE TABLE check_cache (
  check_name  text NOT NULL,
  input_hash  bytea NOT NULL,
  outcome     text NOT NULL CHECK (outcome IN ('passed', 'failed')),
  detail      jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (check_name, input_hash)
);
CREATE INDEX check_cache_created ON check_cache (created_at);

-- The verdict callback to a campaign's URL: NULL when the campaign has none.
ALTER TABLE registrations
  ADD COLUMN callback_status     text CHECK (callback_status IN ('pending', 'sent', 'error')),
  ADD COLUMN callback_attempts   integer NOT NULL DEFAULT 0,
  ADD COLUMN callback_last_error text;

-- Down Migration
ALTER TABLE registrations DROP COLUMN callback_status, DROP COLUMN callback_attempts, DROP COLUMN callback_last_error;
DROP TABLE check_cache;
