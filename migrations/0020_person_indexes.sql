-- Up Migration

-- A person's records in a campaign, and the records a settled one promoted, each in one index
-- probe (issue 11, surge profile). The checker settles places for every batch of answers
-- (src/db/places.ts): per record it counts the person's records in the campaign and looks for the
-- records promoted from it. With one index per column, a planner whose statistics lag a table that
-- grows by thousands of rows a second (a campaign's opening minutes) estimated ~150 rows for the
-- whole campaign and ANDed a bitmap of every record of the campaign (`registrations_campaign_status`,
-- or every open one: `registrations_campaign_open`) with the person's: work that grows with the
-- campaign, per record, per batch. In the sustained surge bench these statements ran 20-60 ms each
-- and PostgreSQL stood at 90 % of a core. One index holding both columns is the cheaper plan
-- whatever the statistics say. The national id index becomes the composite's first column, so every
-- lookup by national id alone is served as before.
CREATE INDEX registrations_person ON registrations (national_id_index, campaign);
DROP INDEX registrations_national_id_index;
DROP INDEX registrations_promoted_from;
CREATE INDEX registrations_promoted_from ON registrations (promoted_from, status) WHERE promoted_from IS NOT NULL;

-- Down Migration
DROP INDEX registrations_promoted_from;
CREATE INDEX registrations_promoted_from ON registrations (promoted_from) WHERE promoted_from IS NOT NULL;
CREATE INDEX registrations_national_id_index ON registrations (national_id_index);
DROP INDEX registrations_person;
