#!/usr/bin/env bash
# The whole test suite, as CI runs it: type check, then unit and integration tests against real
# PostgreSQL, Redis and Mosquitto (installed with apt-get when missing, started on loopback under
# .stack/, and stopped again afterwards if this run started them).
set -euo pipefail
cd "$(dirname "$0")/.."
tsx=node_modules/.bin/tsx
started=0
if ! "$tsx" scripts/stack.ts status >/dev/null 2>&1; then started=1; fi
cleanup() { if [ "$started" = 1 ]; then "$tsx" scripts/stack.ts down >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT
"$tsx" scripts/stack.ts up
node_modules/.bin/tsc --noEmit -p .
node_modules/.bin/vitest run "$@"
