-- Up Migration

-- first_come's finality waits for the intake (issue 13, decision 022). A registration answered 202
-- may still be in an intake queue, or held by a recorder, while later ones are already checked:
-- its place is ahead of theirs, so theirs is not final until nothing received before it can still
-- arrive. `intake_watermark.settled_before` is that instant — every registration a gateway
-- received before it is in PostgreSQL (a record, a duplicate, a waiting submission) — moved only
-- forward, by the recorders, from what the broker and every live recorder say (recorder_holds).
CREATE TABLE intake_watermark (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  settled_before timestamptz NOT NULL,
  advanced_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO intake_watermark (settled_before) VALUES ('-infinity');

-- Each running recorder's heartbeat: how many intake deliveries it holds unacked and the gateway
-- receive time of the oldest of them ('-infinity': one it cannot read). `written_at` is the
-- database's time read BEFORE the recorder looked at what it holds. A row not written for longer
-- than the watermark's expiry is a recorder gone (its deliveries are back with the broker): a
-- recorder that cannot write it for half the expiry gives back what it holds and stops consuming
-- until it can. Logged, not UNLOGGED: a crash of PostgreSQL must not forget who holds what.
CREATE TABLE recorder_holds (
  recorder text PRIMARY KEY,
  held integer NOT NULL,
  oldest_received_at timestamptz,
  written_at timestamptz NOT NULL
);

-- When a record's first_come place became final and its callback (and its citizen's allocation
-- message) was owed for it; set also by a callback that carried the final place already.
ALTER TABLE registrations ADD COLUMN allocation_told_at timestamptz;

-- How long a lottery's draw took (its metric, read by the status role like the rest of the draw).
ALTER TABLE draws ADD COLUMN draw_seconds double precision;

GRANT SELECT, INSERT, UPDATE, DELETE ON recorder_holds TO sabt_recorder;
GRANT SELECT, UPDATE ON intake_watermark TO sabt_recorder;
GRANT SELECT ON intake_watermark TO sabt_checker, sabt_status;
GRANT SELECT ON releases TO sabt_checker;

-- Down Migration
REVOKE SELECT ON releases FROM sabt_checker;
ALTER TABLE draws DROP COLUMN draw_seconds;
ALTER TABLE registrations DROP COLUMN allocation_told_at;
DROP TABLE recorder_holds;
DROP TABLE intake_watermark;
