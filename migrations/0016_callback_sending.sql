-- Up Migration

-- A verdict callback being POSTed right now, and until when (issue 16: exactly once). Two messages
-- for one pending callback — the original and the sweeper's copy, or a retry and a replay — can
-- reach checkers at the same moment; each read `pending` and both sent. A sender claims the
-- callback before its POST; a second one finds it claimed and sends nothing. A claim ends with the
-- send's outcome (sent, retried, dead), or lapses if its process died mid-POST.
ALTER TABLE registrations ADD COLUMN callback_sending_until timestamptz;

-- Down Migration
ALTER TABLE registrations DROP COLUMN callback_sending_until;
