#!/usr/bin/env bash
# The whole test suite, as CI runs it: type check, then unit and integration tests against real
# PostgreSQL, Redis and Mosquitto (installed with apt-get when missing, started on loopback under
# .stack/, and stopped again afterwards if this run started them); the console's browser tests
# with Debian's chromium (installed with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
tsx=node_modules/.bin/tsx
started=0
if ! "$tsx" scripts/stack.ts status >/dev/null 2>&1; then started=1; fi
cleanup() { if [ "$started" = 1 ]; then "$tsx" scripts/stack.ts down >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT
"$tsx" scripts/stack.ts up
# the console's browser tests drive Debian's chromium (never a downloaded browser)
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  echo "test: installing Debian's chromium for the console browser tests" >&2
  sudo_cmd=""; if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium >/dev/null \
    || { $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update >/dev/null && $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends chromium >/dev/null; } \
    || echo "test: chromium could not be installed: the browser tests will fail" >&2
fi
# the evidence pack tests read PDFs with Debian's poppler-utils (pdftotext, pdfinfo)
if ! command -v pdftotext >/dev/null 2>&1; then
  echo "test: installing Debian's poppler-utils for the evidence pack tests" >&2
  sudo_cmd=""; if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends poppler-utils >/dev/null \
    || { $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 update >/dev/null && $sudo_cmd apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends poppler-utils >/dev/null; } \
    || echo "test: poppler-utils could not be installed: the evidence pack tests will fail" >&2
fi
node_modules/.bin/tsc --noEmit -p .
node_modules/.bin/tsc --noEmit -p browser
node_modules/.bin/vitest run "$@"
