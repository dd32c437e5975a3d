#!/bin/sh
# docker-entrypoint-initdb.d hook of the PostgreSQL/TimescaleDB image (runs once, on an empty
# data directory, after the image's own TimescaleDB set-up): creates the migration role and the
# runtime role (deploy/postgres/roles.psql). Also runs by hand against an existing server with
# PGHOST/PGPORT/PGUSER set: POSTGRES_DB=tagwatch sh deploy/postgres/10-roles.sh
set -eu
: "${TAGWATCH_OWNER_PASSWORD:?set TAGWATCH_OWNER_PASSWORD}" "${TAGWATCH_APP_PASSWORD:?set TAGWATCH_APP_PASSWORD}"
db="${POSTGRES_DB:-tagwatch}"
here="${ROLES_DIR:-/docker-entrypoint-initdb.d}"
[ -f "$here/roles.psql" ] || here="$(dirname "$0")"
psql -v ON_ERROR_STOP=1 ${POSTGRES_USER:+--username "$POSTGRES_USER"} --dbname "$db" \
  -v owner_role="${TAGWATCH_OWNER_ROLE:-tagwatch_owner}" -v app_role="${TAGWATCH_APP_ROLE:-tagwatch_app}" \
  -v owner_password="$TAGWATCH_OWNER_PASSWORD" -v app_password="$TAGWATCH_APP_PASSWORD" -v db="$db" \
  -f "$here/roles.psql"
