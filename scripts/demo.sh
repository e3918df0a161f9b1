#!/usr/bin/env bash
# README's main command: set up everything, then run the most complete end-to-end example there
# is (until the config-driven demo lands): a Qwen2-style model from a Hugging Face config trained
# on the shipped Shakespeare excerpt, sampled with the KV cache, saved and reloaded as a
# Hugging Face checkpoint. Extra arguments go to the example (e.g. --steps 100).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
# About a minute with native kernels on 2 cores; pass --steps/--batch to change it.
exec node --experimental-strip-types --disable-warning=ExperimentalWarning examples/qwen2-tiny/train.ts --steps 1000 --batch 16 "$@"
