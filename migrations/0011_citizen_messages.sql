-- Up Migration

-- The citizen's side (issue 14, decision 021).
--
-- Whether a campaign's citizens are sent SMS (the configuration has an `sms:` provider; synced by
-- `sabt migrate` like the rest of the campaign): without one, no outbox row is written at all.
ALTER TABLE campaigns ADD COLUMN citizen_sms boolean NOT NULL DEFAULT false;

-- A tracking code per registration: short, human friendly (no 0/O, 1/I/L), unique per campaign,
-- drawn from gen_random_uuid()'s CSPRNG bytes when the registration is written (same transaction).
CREATE TABLE tracking_codes (
  registration_id uuid PRIMARY KEY,
  campaign        text NOT NULL,
  code            text NOT NULL,
  CONSTRAINT tracking_codes_once UNIQUE (campaign, code)
);

-- The outbox of messages to citizens: at most one receipt and one verdict message per
-- registration, ever (the primary key). `pending` is owed; the checker's sweeper publishes due
-- rows, the SMS task sends a row only while it is pending and only when it holds its claim.
CREATE TABLE citizen_messages (
  registration_id uuid NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('receipt', 'verdict')),
  campaign        text NOT NULL,
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'error', 'skipped')),
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  due_at          timestamptz NOT NULL DEFAULT now(),
  claimed_until   timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz,
  PRIMARY KEY (registration_id, kind)
);
CREATE INDEX citizen_messages_due ON citizen_messages (due_at) WHERE state = 'pending';

-- "Am I registered?": every request is a row (a miss too, so the limits cannot tell a registered
-- person from an unregistered one). The code is stored hashed (HMAC); its sealed copy lives only
-- until the SMS is sent.
CREATE TABLE lookup_codes (
  id                uuid PRIMARY KEY,
  campaign          text NOT NULL,
  registration_id   uuid,
  national_id_index bytea NOT NULL,
  mobile_index      bytea NOT NULL,
  client_index      bytea NOT NULL,
  code_hash         bytea,
  code_sealed       bytea,
  key_id            text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  expires_at        timestamptz NOT NULL,
  used_at           timestamptz,
  wrong_attempts    integer NOT NULL DEFAULT 0,
  sms_state         text NOT NULL DEFAULT 'none' CHECK (sms_state IN ('none', 'pending', 'sent', 'error')),
  sms_attempts      integer NOT NULL DEFAULT 0,
  sms_error         text,
  sms_due_at        timestamptz,
  claimed_until     timestamptz
);
CREATE INDEX lookup_codes_national_id ON lookup_codes (national_id_index, created_at);
CREATE INDEX lookup_codes_mobile ON lookup_codes (mobile_index, created_at);
CREATE INDEX lookup_codes_client ON lookup_codes (client_index, created_at);
CREATE INDEX lookup_codes_sms_due ON lookup_codes (sms_due_at) WHERE sms_state = 'pending';

CREATE FUNCTION sabt_tracking_code(b bytea) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT substr(a, 1 + get_byte(b, 0) % 31, 1) || substr(a, 1 + get_byte(b, 1) % 31, 1)
      || substr(a, 1 + get_byte(b, 2) % 31, 1) || substr(a, 1 + get_byte(b, 3) % 31, 1)
      || substr(a, 1 + get_byte(b, 4) % 31, 1) || substr(a, 1 + get_byte(b, 5) % 31, 1)
      || substr(a, 1 + get_byte(b, 10) % 31, 1) || substr(a, 1 + get_byte(b, 11) % 31, 1)
  FROM (SELECT '23456789ABCDEFGHJKMNPQRSTUVWXYZ'::text AS a) x
$$;

-- A registration written: its receipt owed, its tracking code drawn (again for the few that
-- collide with one already taken in the campaign). One statement per batch, not per row.
CREATE FUNCTION sabt_citizen_recorded() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  wanted bigint;
  got bigint;
BEGIN
  INSERT INTO citizen_messages (registration_id, kind, campaign)
    SELECT n.id, 'receipt', n.campaign FROM new_rows n
    JOIN campaigns c ON c.slug = n.campaign AND c.citizen_sms
    ON CONFLICT DO NOTHING;
  -- A campaign without checks records its registrations accepted: the verdict is owed at once.
  INSERT INTO citizen_messages (registration_id, kind, campaign)
    SELECT n.id, 'verdict', n.campaign FROM new_rows n
    JOIN campaigns c ON c.slug = n.campaign AND c.citizen_sms
    WHERE n.status IN ('accepted', 'rejected')
    ON CONFLICT DO NOTHING;
  SELECT count(*) INTO wanted FROM new_rows;
  INSERT INTO tracking_codes (registration_id, campaign, code)
    SELECT id, campaign, sabt_tracking_code(uuid_send(gen_random_uuid())) FROM new_rows
    ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS got = ROW_COUNT;
  -- Rarely, a code drawn is taken already (or twice in the batch): those rows draw again.
  FOR i IN 1..20 LOOP
    EXIT WHEN got >= wanted;
    INSERT INTO tracking_codes (registration_id, campaign, code)
      SELECT n.id, n.campaign, sabt_tracking_code(uuid_send(gen_random_uuid())) FROM new_rows n
      WHERE NOT EXISTS (SELECT 1 FROM tracking_codes t WHERE t.registration_id = n.id)
      ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS wanted = ROW_COUNT;
    got := got + wanted;
    SELECT count(*) INTO wanted FROM new_rows;
  END LOOP;
  RETURN NULL;
END
$$;
CREATE TRIGGER registrations_citizen_recorded AFTER INSERT ON registrations
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sabt_citizen_recorded();

-- A verdict became final (accepted or rejected): its message owed, once.
CREATE FUNCTION sabt_citizen_verdict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO citizen_messages (registration_id, kind, campaign)
    SELECT n.id, 'verdict', n.campaign FROM new_rows n JOIN old_rows o ON o.id = n.id
    JOIN campaigns c ON c.slug = n.campaign AND c.citizen_sms
    WHERE n.status IN ('accepted', 'rejected') AND o.status NOT IN ('accepted', 'rejected')
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;
CREATE TRIGGER registrations_citizen_verdict AFTER UPDATE ON registrations
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sabt_citizen_verdict();

-- The roles of migration 0008: whoever writes registrations (recorder, checker, status) writes
-- the outbox rows and codes its triggers make; the checker sends; the status role looks up.
GRANT SELECT, INSERT ON tracking_codes TO sabt_recorder, sabt_checker, sabt_status;
GRANT SELECT, INSERT ON citizen_messages TO sabt_recorder, sabt_status;
GRANT SELECT, INSERT, UPDATE ON citizen_messages TO sabt_checker;
GRANT SELECT, UPDATE ON lookup_codes TO sabt_checker;
GRANT SELECT, INSERT, UPDATE ON lookup_codes TO sabt_status;
GRANT UPDATE ON citizen_messages TO sabt_status;

-- Down Migration
DROP TRIGGER registrations_citizen_verdict ON registrations;
DROP TRIGGER registrations_citizen_recorded ON registrations;
DROP FUNCTION sabt_citizen_verdict();
DROP FUNCTION sabt_citizen_recorded();
DROP FUNCTION sabt_tracking_code(bytea);
DROP TABLE lookup_codes;
DROP TABLE citizen_messages;
DROP TABLE tracking_codes;
ALTER TABLE campaigns DROP COLUMN citizen_sms;
