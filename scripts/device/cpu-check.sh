#!/usr/bin/env bash
# On the lent GPU machine (its host CPU has AVX-512): the kernels-cpu test files and the CPU benches, run from the
# files scripts/device/stage.mjs put in .device/ (carry it). Writes logs and tables under $OUT; prints a short
# summary last. Usage there: bash scripts/device/cpu-check.sh [quick]   (quick: tests only, default and packed GEMM)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/cpu-check-out}
mkdir -p "$OUT"
W=/tmp/omnitrain-device
mkdir -p "$W/lib"
xz -dc .device/node.xz >"$W/node" && chmod +x "$W/node"
tar -xJf .device/libs.tar.xz -C "$W/lib"
export PATH="$W:$PATH" LD_LIBRARY_PATH="$W/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
summary=()

{
  grep -m1 'model name' /proc/cpuinfo
  echo "cores: $(nproc); flags: $(grep -o -w 'avx512[a-z_0-9]*\|amx[a-z_0-9]*\|avx2\|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "node $(node --version); $(python3 -c 'import torch; print("torch", torch.__version__, torch.__config__.parallel_info().splitlines()[0])' 2>&1)"
  ldd .device/pkg/node_modules/@omnitrain/kernels-cpu/native/build/Release/omnitrain_kernels_cpu.node | grep -i 'not found' || true
} | tee "$OUT/machine.txt"
summary+=("$(head -1 "$OUT/machine.txt")")

cd .device/pkg
node -e "import('@omnitrain/kernels-cpu').then(k=>{k.plugin;console.log(k.nativeStatus().message)})" | tee -a "$OUT/machine.txt"
summary+=("$(tail -1 "$OUT/machine.txt")")

run_tests() { # name, env...
  local name=$1
  shift
  env "$@" node tests.mjs >"$OUT/tests-$name.log" 2>&1
  summary+=("tests [$name] $*: $(tail -1 "$OUT/tests-$name.log")")
  grep -A3 '^  x ' "$OUT/tests-$name.log" | head -40
}
run_tests default
run_tests packed OMNITRAIN_GEMM=packed
run_tests openblas OMNITRAIN_GEMM=openblas
run_tests bf16-auto OMNITRAIN_GEMM_BF16=auto
if [ "${1:-}" != quick ]; then
  run_tests avx2-packed OMNITRAIN_GEMM=packed OMNITRAIN_GEMM_ISA=avx2
  run_tests 2-threads OMNITRAIN_NUM_THREADS=2
  T=$(nproc)
  timeout 150 node --experimental-strip-types --no-warnings bench/cpu/gemm.ts --threads "$T" --rounds 3 --reps 3 \
    --python python3 --out "$OUT/gemm-$T-threads.md" >"$OUT/gemm.log" 2>&1
  summary+=("gemm bench exit $?")
  OMNITRAIN_GEMM=openblas timeout 100 node --experimental-strip-types --no-warnings bench/cpu/gemm.ts --threads "$T" \
    --rounds 2 --reps 3 --python python3 --out "$OUT/gemm-openblas-$T-threads.md" >"$OUT/gemm-openblas.log" 2>&1
  summary+=("gemm bench (openblas) exit $?")
  timeout 200 node --experimental-strip-types --no-warnings bench/cpu/bench.ts --threads "$T" --rounds 1 --micro 2 --steps 2 \
    --python python3 >"$OUT/bench.log" 2>&1
  summary+=("bench:cpu exit $?")
  cp bench/results/cpu-latest.md "$OUT/bench-cpu-$T-threads.md" 2>/dev/null
  cat "$OUT"/gemm-*.md "$OUT/bench-cpu-$T-threads.md" 2>/dev/null | grep '^|' | head -40
fi
printf '%s\n' "${summary[@]}"
