#!/usr/bin/env bash
# On the primary's first start (mounted into /docker-entrypoint-initdb.d by
# docker-compose.replica.yml): a login that may only stream WAL, a physical replication slot for
# the replica (so the primary keeps the WAL the replica has not received yet), and the pg_hba.conf
# line that lets it connect with a password. `all` in pg_hba.conf does not cover replication.
set -euo pipefail
: "${POSTGRES_REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set pw="$POSTGRES_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'pw';
SELECT pg_create_physical_replication_slot('sabt_replica');
SQL
echo 'host replication replicator all scram-sha-256' >>"$PGDATA/pg_hba.conf"
