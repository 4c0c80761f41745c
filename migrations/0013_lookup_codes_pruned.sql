-- Up Migration

-- "Am I registered?" requests (0011) are pruned once no limit counts them any more (the longest
-- window is a day) and their code has expired: the retention sweeper of the status role deletes
-- them, oldest first, by this index.
CREATE INDEX lookup_codes_created ON lookup_codes (created_at);
GRANT DELETE ON lookup_codes TO sabt_status;

-- Down Migration
REVOKE DELETE ON lookup_codes FROM sabt_status;
DROP INDEX lookup_codes_created;
