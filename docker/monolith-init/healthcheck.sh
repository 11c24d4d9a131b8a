#!/usr/bin/env bash
# Healthcheck of the jobboard monolith container (docker-compose.yaml runs it with bash).
# Healthy once the real server accepts TCP connections (on the first start the image fills the
# database through a temporary server that listens on its unix socket only) and the sample has been
# committed: the last table that 10-jobboard-sample.sh creates exists.
set -eu
export PGPASSWORD="${POSTGRES_PASSWORD:-}"
pg_isready --quiet --host 127.0.0.1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB"
filled="$(psql --no-psqlrc --tuples-only --no-align --host 127.0.0.1 --username "$POSTGRES_USER" \
    --dbname "$POSTGRES_DB" --command "SELECT to_regclass('public.analytics_events') IS NOT NULL")"
[ "$filled" = t ]
