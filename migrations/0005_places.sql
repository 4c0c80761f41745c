-- Up Migration

-- A person's place in a campaign (decision 015). The place is held by at most one record at a time:
-- the one being checked, or accepted. A record that ends rejected or failed gives it up, so a typo
-- no longer locks the person out; the earliest submission waiting beside it takes it. Only a record
-- past the campaign's max_records_per_person keeps it after a rejection (the cap on what a stranger
-- can spend of the providers' quota on someone else's id).
--
-- The rule stays on the one batch INSERT … ON CONFLICT DO NOTHING of the recorder: a partial unique
-- index over the records that hold their place replaces the unique constraint over all of them.
ALTER TABLE registrations
  ADD COLUMN holds_place   boolean NOT NULL DEFAULT true,
  ADD COLUMN promoted_from uuid;  -- the record whose rejection (or failure) gave this one its place

-- Records already rejected or failed give up their place now.
UPDATE registrations SET holds_place = false WHERE status IN ('rejected', 'failed');

ALTER TABLE registrations DROP CONSTRAINT registrations_person_once;
CREATE UNIQUE INDEX registrations_place ON registrations (campaign, national_id_index) WHERE holds_place;
CREATE INDEX registrations_promoted_from ON registrations (promoted_from) WHERE promoted_from IS NOT NULL;

-- Submissions that arrived while the place's record was still being checked: kept whole (sealed
-- like a record) until that record is accepted (they become duplicates and their personal data is
-- dropped) or gives up its place (the earliest becomes the record, keeping its own received_at).
CREATE TABLE waiting (
  id                 uuid PRIMARY KEY,
  campaign           text NOT NULL,
  national_id_index  bytea NOT NULL,
  national_id_sealed bytea NOT NULL,
  mobile_sealed      bytea NOT NULL,
  key_id             text NOT NULL,
  first_name         text,
  last_name          text,
  birth_date         date,
  attributes         jsonb,
  received_at        timestamptz NOT NULL,
  recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX waiting_place ON waiting (campaign, national_id_index, id);

-- Down Migration
DROP TABLE waiting;
DROP INDEX registrations_promoted_from;
DROP INDEX registrations_place;
ALTER TABLE registrations ADD CONSTRAINT registrations_person_once UNIQUE (campaign, national_id_index);
ALTER TABLE registrations DROP COLUMN promoted_from, DROP COLUMN holds_place;
