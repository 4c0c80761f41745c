-- Up Migration

-- Partner API keys for batch intake. The key itself is shown once, at creation; only its SHA-256
-- is kept (the secret is 256 random bits, so a fast hash is enough: nothing to brute-force).
CREATE TABLE api_keys (
  id               text PRIMARY KEY,            -- the public part of the key: sabt_<id>_<secret>
  name             text NOT NULL,
  secret_sha256    bytea NOT NULL,
  records_per_second integer NOT NULL CHECK (records_per_second > 0),
  created_at       timestamptz NOT NULL DEFAULT now(),
  revoked_at       timestamptz
);

-- Erasure (a campaign's retention period) removes the blind index too: what remains of an erased
-- record is its campaign, status and timestamps — the counts. NULLs never collide in UNIQUE.
ALTER TABLE registrations ALTER COLUMN national_id_index DROP NOT NULL;
ALTER TABLE registrations ADD CONSTRAINT registrations_erased_or_whole CHECK (
  erased_at IS NOT NULL OR (national_id_index IS NOT NULL AND national_id_sealed IS NOT NULL AND mobile_sealed IS NOT NULL)
);

-- Down Migration
ALTER TABLE registrations DROP CONSTRAINT registrations_erased_or_whole;
DROP TABLE api_keys;
