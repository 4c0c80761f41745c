-- Up Migration

-- first_come at national scale (decision 023). A record's place was counted afresh every time it
-- was asked for: every accepted registration before it, every unsettled one before it — about 1.5 s
-- of PostgreSQL for one record late among a million, for each callback and allocation message the
-- finality sweep owes, and 0.8–1.4 s for each sweep's frontier with 300,000 records unsettled.
--
-- `place_rank`: the record's place among the campaign's accepted registrations in arrival order,
-- written once, when its place became final (the finality sweep numbers the records below the
-- frontier in order, after the ones it numbered before). A released place keeps its number; the
-- ranks after it move up by the releases ahead of them (few, counted from `releases`).
ALTER TABLE registrations ADD COLUMN place_rank integer;
CREATE UNIQUE INDEX registrations_place_rank ON registrations (campaign, place_rank) WHERE place_rank IS NOT NULL;

-- The earliest unsettled registration of a campaign in one probe, not a scan of all of them.
CREATE INDEX registrations_campaign_open ON registrations (campaign, received_at)
  WHERE status IN ('recorded', 'verifying', 'failed');

-- No numbering here: places already final (a system upgraded with first_come campaigns running)
-- are numbered by the first sweep, in the same order, before any later one.

-- Down Migration
DROP INDEX registrations_campaign_open;
DROP INDEX registrations_place_rank;
ALTER TABLE registrations DROP COLUMN place_rank;
