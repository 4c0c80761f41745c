-- Up Migration

-- What a sent message told of the person's place ('won' or 'waitlisted'; null when it told none).
-- A promotion (0014) owes "you won" only to a person not told so already: a verdict (first_come)
-- or allocation (lottery) message still pending when the place came to them reads "won" when it
-- is sent, and one sent after that moment said so. The promotion's sender reads this column and
-- skips itself rather than tell the same person twice (decision 021).
ALTER TABLE citizen_messages ADD COLUMN told text CHECK (told IN ('won', 'waitlisted'));

-- Down Migration
ALTER TABLE citizen_messages DROP COLUMN told;
