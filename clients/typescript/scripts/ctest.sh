#!/usr/bin/env bash
# The client's tests as CTest runs them (client.typescript): installs the
# locked packages when node_modules is missing or older than the lock file,
# compiles (tsc), then runs every test with Node's test runner. The
# integration tests start th-stack (TH_STACK_BIN) and need the variables
# CTest sets; the unit tests compare fields with SCHEMA_TOOL when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "ctest.sh: $tool is missing (bash scripts/install-deps.sh)" >&2; exit 1; }
done
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
rm -rf dist
node node_modules/typescript/bin/tsc -p tsconfig.json
exec node --test --test-reporter=spec dist/test/*.test.js
