#!/usr/bin/env bash
# README's test command: set up everything (Node 22, pnpm, deps, builds), check, then run
# every package's tests. The last line is "N passed, N failed" from vitest's JSON results.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh" || { echo "set-up failed"; echo "0 passed, 1 failed"; exit 1; }
cd "$ROOT"
status=0
step() { echo "[test] $*"; "$@" || { echo "[test] FAILED: $*"; status=1; }; }
step pnpm -s lint
step pnpm -s typecheck
step pnpm -s check:packages
mkdir -p .test-results
rm -f .test-results/vitest.json
pnpm -s exec vitest run --reporter=default --reporter=json --outputFile.json=.test-results/vitest.json || true
# Checks that failed count as one failure; test results come from the JSON report.
node "$ROOT/scripts/test-summary.mjs" .test-results/vitest.json "$status"
