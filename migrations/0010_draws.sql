-- Up Migration

-- Scarce campaigns (decision 019). A lottery's draw: the seed is fixed (and only its SHA-256, the
-- commitment, shown) before the campaign opens; the draw ranks the accepted registrations by
-- HMAC-SHA256(seed, id) and reveals the seed, in one transaction that also writes every rank.
CREATE TABLE draws (
  campaign             text PRIMARY KEY,
  seed                 bytea NOT NULL,          -- secret until drawn_at is set (then public)
  commitment           text NOT NULL,           -- hex SHA-256 of the seed
  committed_at         timestamptz NOT NULL DEFAULT now(),
  committed_by         text NOT NULL,
  drawn_at             timestamptz,             -- drawn and revealed in the same commit
  drawn_by             text,
  capacity             integer,
  participants         integer,
  participants_sha256  text                     -- SHA-256 of the participants' ids, sorted, one a line
);

-- One row per participant of a drawn lottery: its rank (1 = first) and whether the draw made it a
-- winner. A release (a winner who declined) marks it released and promotes the first on the
-- waiting list; `won` keeps what the draw itself decided, so the results stay verifiable.
CREATE TABLE allocations (
  registration_id  uuid PRIMARY KEY,
  campaign         text NOT NULL,
  rank             integer NOT NULL,
  won              boolean NOT NULL,
  promoted_at      timestamptz,                -- a waiting-list entry given a released place
  released_at      timestamptz,                -- a winner (drawn or promoted) who gave the place up
  UNIQUE (campaign, rank)
);

-- Who gave up a place, who got it, who did it and when.
CREATE TABLE releases (
  id           bigserial PRIMARY KEY,
  campaign     text NOT NULL,
  released_id  uuid NOT NULL,
  promoted_id  uuid,                             -- NULL: the waiting list was empty
  released_by  text NOT NULL,
  released_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (released_id)
);
CREATE INDEX releases_campaign ON releases (campaign, id);

-- first_come ranks accepted registrations by the gateway's receive time.
CREATE INDEX registrations_campaign_received ON registrations (campaign, received_at) WHERE status = 'accepted';

-- Down Migration
DROP INDEX registrations_campaign_received;
DROP TABLE releases;
DROP TABLE allocations;
DROP TABLE draws;
