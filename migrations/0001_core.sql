-- Up Migration

-- Campaigns live in the configuration file; this table mirrors them at start, for joins and reports.
CREATE TABLE campaigns (
  slug            text PRIMARY KEY,
  title           text NOT NULL,
  opens_at        timestamptz,
  closes_at       timestamptz,
  checks          text[] NOT NULL DEFAULT '{}',
  retention_days  integer,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per person per campaign. National id and mobile are sealed (AES-256-GCM, key_id names
-- the key); national_id_index is a keyed HMAC of the normalised national id (a blind index) and
-- carries the one-registration-per-person rule. No foreign key to campaigns: the gateway already
-- refused unknown campaigns, and a per-row RI trigger would slow the batch insert.
CREATE TABLE registrations (
  id                 uuid PRIMARY KEY,             -- UUIDv7 minted by the gateway: arrival order
  campaign           text NOT NULL,
  national_id_index  bytea NOT NULL,
  national_id_sealed bytea,                        -- NULL once erased (retention)
  mobile_sealed      bytea,
  key_id             text NOT NULL,
  first_name         text,
  last_name          text,
  birth_date         date,
  attributes         jsonb,
  received_at        timestamptz NOT NULL,         -- at the gateway
  recorded_at        timestamptz NOT NULL DEFAULT now(),
  status             text NOT NULL DEFAULT 'recorded'
                     CHECK (status IN ('recorded', 'verifying', 'accepted', 'rejected', 'failed')),
  verdict_at         timestamptz,
  erased_at          timestamptz,
  CONSTRAINT registrations_person_once UNIQUE (campaign, national_id_index)
);
CREATE INDEX registrations_national_id_index ON registrations (national_id_index);
CREATE INDEX registrations_campaign_status ON registrations (campaign, status);

-- A later submission by the same person in the same campaign: kept, pointing at the original.
CREATE TABLE duplicates (
  id           uuid PRIMARY KEY,
  original_id  uuid NOT NULL REFERENCES registrations (id) ON DELETE CASCADE,
  campaign     text NOT NULL,
  received_at  timestamptz NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX duplicates_original ON duplicates (original_id);

-- One row per (registration, check). outcome NULL while attempts are still being made.
CREATE TABLE check_results (
  registration_id  uuid NOT NULL REFERENCES registrations (id) ON DELETE CASCADE,
  check_name       text NOT NULL,
  outcome          text CHECK (outcome IN ('passed', 'failed', 'error')),
  attempts         integer NOT NULL DEFAULT 0,
  latency_ms       integer,
  detail           jsonb,
  last_error       text,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  PRIMARY KEY (registration_id, check_name)
);
CREATE INDEX check_results_unfinished ON check_results (check_name) WHERE outcome IS NULL OR outcome = 'error';

-- Down Migration
DROP TABLE check_results;
DROP TABLE duplicates;
DROP TABLE registrations;
DROP TABLE campaigns;
