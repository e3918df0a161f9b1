#!/usr/bin/env bash
# Alternating rounds of GEMM candidates (bench/cpu/gemm-candidates.cc) on one shape, for a shared, noisy machine:
# every round runs each candidate once (best of REPS calls), so drift hits all of them alike; prints each one's
# best, median and median per-round ratio to the first candidate.
# Build gemm-candidates first (see its header), then e.g.:
#   TH=2 bash bench/cpu/gemm-rounds.sh 8 "1024 1024 1024" torch:1 ours:0 packed:2 openblas-panels:3 \
#     packed-kc512:2:OMNITRAIN_GEMM_KC=512
# A candidate is label:mode[:ENV=value,ENV=value]; modes as in gemm-candidates.cc (1 = OpenBLAS's own threads,
# i.e. what PyTorch calls). TRANS="0 1" sets transA transB; REPS (default 3) calls per candidate per round.
set -euo pipefail
rounds=$1 shape=$2
shift 2
bin=${GEMM_CANDIDATES:-/tmp/gemm-candidates}
out=$(mktemp)
for _ in $(seq "$rounds"); do
  line=""
  for c in "$@"; do
    IFS=: read -r label mode envs <<<"$c"
    # shellcheck disable=SC2086
    v=$(env ${envs//,/ } "$bin" $shape "$mode" "${REPS:-3}" ${TRANS:-0 0} | tail -1 | awk '{print $(NF-1)}')
    line="$line $label=$v"
  done
  echo "$line" >>"$out"
done
python3 - "$out" "$@" <<'PY'
import statistics, sys
rows = [dict(kv.split('=') for kv in l.split()) for l in open(sys.argv[1])]
labels = [c.split(':')[0] for c in sys.argv[2:]]
base = labels[0]
for l in labels:
    v = [float(r[l]) for r in rows]
    rat = [float(r[l]) / float(r[base]) for r in rows]
    print(f"{l:16s} best {max(v):6.1f} median {statistics.median(v):6.1f} GFLOP/s  "
          f"best/best {max(v) / max(float(r[base]) for r in rows):.3f}  median round ratio {statistics.median(rat):.3f}")
PY
rm -f "$out"
