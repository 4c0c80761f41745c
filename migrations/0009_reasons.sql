-- Up Migration

-- Why a check said "no": the provider's reason code (not personal data: shown, counted) and its
-- own words (treated as personal data: shown to whom it concerns, never logged, erased with the
-- record's personal data).
ALTER TABLE check_results
  ADD COLUMN reason_code text,
  ADD COLUMN reason_text text;
-- The dashboard's "top rejection reasons" of a campaign, all time and the last hour.
CREATE INDEX check_results_failed ON check_results (finished_at) INCLUDE (registration_id, check_name, reason_code)
  WHERE outcome = 'failed';

-- Down Migration
DROP INDEX check_results_failed;
ALTER TABLE check_results DROP COLUMN reason_code, DROP COLUMN reason_text;
