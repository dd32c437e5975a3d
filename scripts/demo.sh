#!/usr/bin/env bash
# npm run demo [-- simulator options]: the stack, the service and a 50-tag fleet simulator,
# with the URLs and development tokens to look at what flows. Ctrl-C stops the simulator and
# the service; the stack keeps running (npm run stack:down stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
# one process each (no tsx wrapper in between), so a signal reaches the program itself
RUN_TS=(node --import tsx)

npm run --silent stack:up
npm run --silent bundle # the console's browser scripts
set -a
. .stack/env
set +a
export PORT="${PORT:-8080}"
# the console's development sign-in (pick a role and user id): loopback only, refused with OIDC_ISSUER
export DEV_SIGN_IN=true HOST=127.0.0.1
unset OIDC_ISSUER
API="http://127.0.0.1:${PORT}"

if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then
  echo "demo: port ${PORT} is in use; run PORT=18080 npm run demo (or another free port)" >&2
  exit 1
fi

SERVICE_PID=""
SIM_PID=""
cleanup() {
  trap '' INT TERM # a second Ctrl-C (npm forwards one too) must not cut the cleanup short
  trap - EXIT
  if [[ -n "$SIM_PID" ]] && kill -0 "$SIM_PID" 2>/dev/null; then
    kill -INT "$SIM_PID" 2>/dev/null || true
    wait "$SIM_PID" 2>/dev/null || true
  fi
  if [[ -n "$SERVICE_PID" ]] && kill -0 "$SERVICE_PID" 2>/dev/null; then
    echo "demo: stopping the service"
    kill -TERM "$SERVICE_PID" 2>/dev/null || true
    wait "$SERVICE_PID" 2>/dev/null || true
  fi
  echo "demo: stopped. The stack is still running: npm run stack:down stops it."
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The service and the simulator run in sessions of their own, so Ctrl-C reaches them only
# through cleanup: once each, as an orderly shutdown, the simulator first.
setsid "${RUN_TS[@]}" app/main.ts all >.stack/service.log 2>&1 &
SERVICE_PID=$!
echo "demo: service starting (pid ${SERVICE_PID}), log in .stack/service.log"
for _ in $(seq 1 120); do
  if curl -fsS "${API}/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVICE_PID" 2>/dev/null; then
    echo "demo: the service exited; last lines of .stack/service.log:" >&2
    tail -n 20 .stack/service.log >&2
    exit 1
  fi
  sleep 0.5
done
curl -fsS "${API}/readyz" >/dev/null || { echo "demo: ${API}/readyz not ready after 60 s" >&2; exit 1; }

ADMIN=$("${RUN_TS[@]}" scripts/dev-token.ts admin admin-1)
SUPERVISOR=$("${RUN_TS[@]}" scripts/dev-token.ts supervisor supervisor-1)
OM=$("${RUN_TS[@]}" scripts/dev-token.ts offender_manager om-1)
ANALYST=$("${RUN_TS[@]}" scripts/dev-token.ts analyst analyst-1)
cat <<EOF

tagwatch is running.
  Console    ${API}/console  (development sign-in: e.g. offender manager om-1, or supervisor)
  API        ${API}/v1
  OpenAPI    ${API}/docs
  readiness  ${API}/readyz
  metrics    ${API}/metrics (admin or supervisor token)
  MQTT       ${MQTT_URL} (topics tags/v1/{deviceId}/{gps|alcohol|status})
  log        .stack/service.log

Development tokens (12 h; mint more with: npx tsx scripts/dev-token.ts <role> [sub]):
  admin             ${ADMIN}
  supervisor        ${SUPERVISOR}
  offender_manager  ${OM}   (sub om-1: sees subjects listing om-1)
  analyst           ${ANALYST}

Try:
  curl -s -H "Authorization: Bearer \$OM" ${API}/v1/subjects
  curl -s -H "Authorization: Bearer \$OM" "${API}/v1/subjects/sim-subj-0001/track?from=\$(date -u -d '-2 hours' +%FT%TZ)&to=\$(date -u +%FT%TZ)"
  (with OM set to the offender_manager token above)

Starting the simulator: 50 tags around Nottingham. Ctrl-C stops the simulator and the service.

EOF

setsid "${RUN_TS[@]}" sim/simulate.ts --devices 50 --api "$API" "$@" &
SIM_PID=$!
wait "$SIM_PID" || true
SIM_PID=""
