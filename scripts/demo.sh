#!/usr/bin/env bash
# The README's main command: set up everything, then train a small Qwen2-style model on the
# Shakespeare excerpt that ships with the repo with `omnitrain train` on 2 local ranks (FSDP over
# Gloo, native CPU kernels; @omnitrain/data tokenizes and packs the records), stop half way,
# resume from the sharded `dcp` checkpoint (model, optimizer, schedule, data iterator, RNG: the
# curve continues exactly), plot the curves and generate text (read straight from the dcp
# checkpoint; the run also exports a Hugging Face folder RUN_DIR/hf). Extra arguments go to both `omnitrain train` runs
# (e.g. --train.steps 100). RUN_DIR (default runs/train-demo) is the run folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
RUN="${RUN_DIR:-runs/train-demo}"
CONFIG=examples/train-demo/config.yaml
omnitrain() { node packages/train/bin/omnitrain.js "$@"; }
rm -rf "$RUN"
t0=$(date +%s)
echo "== omnitrain doctor"
omnitrain doctor
STEPS=$(node -e "const y=require('fs').readFileSync('$CONFIG','utf8');console.log(/\bsteps:\s*(\d+)/.exec(y)[1])")
for a in "$@"; do [[ "${prev:-}" == --train.steps ]] && STEPS="$a"; prev="$a"; done
HALF=$((STEPS / 2))
echo "== 1. train steps 1..$HALF of $STEPS on 2 ranks, then stop (as a preempted job would)"
omnitrain train "$CONFIG" --nproc-per-node 2 --run.dir "$RUN" --train.stop_after "$HALF" "$@"
echo "== 2. the same command without the stop: resumes from the latest checkpoint"
omnitrain train "$CONFIG" --nproc-per-node 2 --run.dir "$RUN" "$@"
echo "== 3. plot"
omnitrain plot "$RUN"
echo "== 4. generate (from the newest dcp checkpoint of the run; --checkpoint $RUN/hf reads the Hugging Face export)"
omnitrain generate --checkpoint "$RUN" --prompt $'ROMEO:\n' --max-new-tokens 300 --temperature 0.8
t1=$(date +%s)
node -e "
const m = require('fs').readFileSync('$RUN/metrics.jsonl', 'utf8').split('\n').filter(Boolean).map(JSON.parse);
const avg = (a) => a.reduce((s, r) => s + r.loss, 0) / a.length;
const at = (s) => m.find((r) => r.step === s);
console.log('== summary: ' + m.length + ' steps; loss (mean of 10 steps) ' + avg(m.slice(0, 10)).toFixed(3) + ' at the start -> ' +
  avg(m.slice(-10)).toFixed(3) + ' at the end; around the resume: step $HALF ' + at($HALF).loss.toFixed(3) + ', step $((HALF + 1)) ' + at($HALF + 1).loss.toFixed(3) +
  '; total wall time $((t1 - t0)) s; curves in $RUN/plot.png');
"
