-- Up Migration

-- A pending verdict callback is owed until it is sent: the checker's sweeper sends it again once
-- callback_due_at has passed (NULL: a lease after the verdict), so a callback whose message was
-- lost — a publish that failed, a checker killed after the commit — is still delivered.
ALTER TABLE registrations ADD COLUMN callback_due_at timestamptz;
CREATE INDEX registrations_callback_pending ON registrations (campaign) WHERE callback_status = 'pending';

-- Down Migration
DROP INDEX registrations_callback_pending;
ALTER TABLE registrations DROP COLUMN callback_due_at;
