#!/bin/sh
# Run by the postgres image on first start (/docker-entrypoint-initdb.d): the two roles.
set -eu
: "${TAGWATCH_OWNER_PASSWORD:?set TAGWATCH_OWNER_PASSWORD}"
: "${TAGWATCH_APP_PASSWORD:?set TAGWATCH_APP_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_password="$TAGWATCH_OWNER_PASSWORD" -v app_password="$TAGWATCH_APP_PASSWORD" -v db="$POSTGRES_DB" \
  -f /tagwatch/postgres-roles.sql
