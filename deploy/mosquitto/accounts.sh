#!/bin/sh
# Creates (or brings up to date) the ingest service's broker account through the running broker's
# dynamic-security plugin, as its admin client. Idempotent; run once per deployment start
# (docker-compose service `mosquitto-accounts`) or by hand. The admin account itself is made
# by `mosquitto_ctrl dynsec init` before the broker first starts (service `mosquitto-init`).
#
# Environment: MQTT_HOST, MQTT_PORT (default 1883), MQTT_CAFILE (TLS: the CA of the broker's certificate), MQTT_ADMIN_USERNAME, MQTT_ADMIN_PASSWORD,
# MQTT_USERNAME, MQTT_PASSWORD (the ingest account to create).
# The role matches serviceCommands() in registry/dynsec.ts: subscribe to all telemetry,
# shared or not, publish nothing.
set -eu
: "${MQTT_HOST:?}" "${MQTT_ADMIN_USERNAME:?}" "${MQTT_ADMIN_PASSWORD:?}" "${MQTT_USERNAME:?}" "${MQTT_PASSWORD:?}"
port="${MQTT_PORT:-1883}"
role=tagwatch-ingest

# mosquitto_ctrl exits 0 even when a command fails, so each step's output is checked instead
ctrl() {
  # shellcheck disable=SC2086
  mosquitto_ctrl -h "$MQTT_HOST" -p "$port" ${MQTT_CAFILE:+--cafile "$MQTT_CAFILE"} -u "$MQTT_ADMIN_USERNAME" -P "$MQTT_ADMIN_PASSWORD" dynsec "$@" 2>&1 \
    | grep -v -e 'running mosquitto_ctrl without encryption' -e 'configuration changes you are making' -e '^$' || true
}
fail_unless_ok() { # $1: output, $2: an error text that is fine (already there)
  if [ -n "$1" ] && ! printf '%s' "$1" | grep -q "$2"; then echo "accounts.sh: $1" >&2; exit 1; fi
}

# wait for the broker (it may still be starting)
i=0
until out=$(ctrl listRoles) && ! printf '%s' "$out" | grep -q -e 'Connection error' -e 'Error'; do
  i=$((i + 1))
  if [ "$i" -ge "${ACCOUNTS_WAIT_S:-30}" ]; then echo "accounts.sh: broker at $MQTT_HOST:$port: $out" >&2; exit 1; fi
  sleep 1
done

fail_unless_ok "$(ctrl createRole "$role")" 'Role already exists'
fail_unless_ok "$(ctrl addRoleACL "$role" subscribePattern 'tags/v1/#' allow 0)" 'already exists'
fail_unless_ok "$(ctrl addRoleACL "$role" subscribePattern '$share/+/tags/v1/#' allow 0)" 'already exists'
fail_unless_ok "$(ctrl createClient "$MQTT_USERNAME" -p "$MQTT_PASSWORD")" 'Client already exists'
fail_unless_ok "$(ctrl setClientPassword "$MQTT_USERNAME" "$MQTT_PASSWORD")" 'never'
if ! ctrl getClient "$MQTT_USERNAME" | grep -q "$role (priority"; then
  fail_unless_ok "$(ctrl addClientRole "$MQTT_USERNAME" "$role" 0)" 'never'
fi

if ! ctrl getClient "$MQTT_USERNAME" | grep -q "$role (priority"; then
  echo "accounts.sh: $MQTT_USERNAME has no role $role after set-up" >&2
  exit 1
fi
echo "accounts.sh: broker account $MQTT_USERNAME ready"
