-- Up Migration

-- A bootstrap session (operator_id NULL: signed in with SABT_ADMIN_TOKEN while no operator account
-- exists) is bound to the token it was opened with: the token's SHA-256. docs/security.md's
-- rotation of SABT_ADMIN_TOKEN says the old token's sessions end; before this column they lived on
-- until they expired (12 h), whatever the token was now. Sessions of operators leave it NULL.
ALTER TABLE operator_sessions ADD COLUMN bootstrap_token_sha256 bytea;

-- Down Migration
ALTER TABLE operator_sessions DROP COLUMN bootstrap_token_sha256;
