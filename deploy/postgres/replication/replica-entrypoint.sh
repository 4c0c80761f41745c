#!/usr/bin/env bash
# The replica's entrypoint (docker-compose.replica.yml), as the postgres user: on an empty data
# directory, copy the primary with pg_basebackup (-R: start as a standby that streams from it,
# through the slot primary-init.sh made), then run the server with the same settings file.
set -euo pipefail
: "${PGDATA:=/var/lib/postgresql/data}"
: "${PRIMARY_HOST:=postgres}"
: "${POSTGRES_REPLICATION_PASSWORD:?set POSTGRES_REPLICATION_PASSWORD in .env}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h "$PRIMARY_HOST" -p 5432; do sleep 1; done
  find "$PGDATA" -mindepth 1 -delete # a copy cut short last time
  export PGPASSWORD="${POSTGRES_REPLICATION_PASSWORD}"
  pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -X stream -S sabt_replica -R --checkpoint=fast
  unset PGPASSWORD
  chmod 700 "$PGDATA"
fi
exec "$@"
