-- Up Migration

-- A lottery's draw (0010) decides who won a place and who waits, after every verdict SMS may have
-- gone: the draw's allocations owe each person a message of its own, once (issue 14). A place
-- given up goes to the next in line (a release, lottery or first_come): that person is owed a
-- `promotion` message, once. Written by statement triggers in the draw's or the release's own
-- transaction, like the receipts and verdicts of 0011, and only where citizens are sent SMS. A
-- first_come campaign writes no allocation rows: its verdict message carries the place.
ALTER TABLE citizen_messages DROP CONSTRAINT citizen_messages_kind_check;
ALTER TABLE citizen_messages ADD CONSTRAINT citizen_messages_kind_check
  CHECK (kind IN ('receipt', 'verdict', 'allocation', 'promotion'));

CREATE FUNCTION sabt_citizen_allocated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO citizen_messages (registration_id, kind, campaign)
    SELECT n.registration_id, 'allocation', n.campaign FROM new_rows n
    JOIN campaigns c ON c.slug = n.campaign AND c.citizen_sms
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER allocations_citizen_allocated AFTER INSERT ON allocations
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sabt_citizen_allocated();

CREATE FUNCTION sabt_citizen_promoted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO citizen_messages (registration_id, kind, campaign)
    SELECT n.promoted_id, 'promotion', n.campaign FROM new_rows n
    JOIN campaigns c ON c.slug = n.campaign AND c.citizen_sms
    WHERE n.promoted_id IS NOT NULL
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER releases_citizen_promoted AFTER INSERT ON releases
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sabt_citizen_promoted();

-- `sabt draw run` and `sabt draw release` are operator commands (the superuser): no grant needed.

-- Down Migration
DROP TRIGGER releases_citizen_promoted ON releases;
DROP FUNCTION sabt_citizen_promoted();
DROP TRIGGER allocations_citizen_allocated ON allocations;
DROP FUNCTION sabt_citizen_allocated();
DELETE FROM citizen_messages WHERE kind IN ('allocation', 'promotion');
ALTER TABLE citizen_messages DROP CONSTRAINT citizen_messages_kind_check;
ALTER TABLE citizen_messages ADD CONSTRAINT citizen_messages_kind_check CHECK (kind IN ('receipt', 'verdict'));
