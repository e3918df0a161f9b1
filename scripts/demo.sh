#!/usr/bin/env bash
# README's main command: set up everything, then run the best end-to-end example there is
# (until the full demo lands: the character-level transformer written from core alone).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec node --experimental-strip-types --disable-warning=ExperimentalWarning examples/char-transformer/train.ts "$@"
