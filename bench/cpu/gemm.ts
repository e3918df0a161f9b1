// GEMM-only comparison with PyTorch on a shared machine: ours (the registry's 'matmul', as models call it) and
// PyTorch (bench/cpu/torch_bench.py --part gemm) run alternately, `--rounds` times, each side best of `--reps`
// per shape; the table reports the best of every round per side and the ratio. Needs core and kernels-cpu dist.
//   node --experimental-strip-types bench/cpu/gemm.ts [--threads 2] [--rounds 5] [--reps 5] [--only square] [--out file.md]
// (--only keeps the shapes whose "what" contains the text.)
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultRegistry, matmul, type Tensor, tensor } from '../../packages/core/dist/index.js';
import { fmaPeakGflops, nativeStatus, plugin, setNumThreads } from '../../packages/kernels-cpu/dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    threads: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    reps: { type: 'string', default: '5' },
    out: { type: 'string' },
    python: { type: 'string', default: '/usr/bin/python3' },
    only: { type: 'string' },
  },
});
const threads = Number(args.threads ?? process.env.OMNITRAIN_NUM_THREADS ?? availableParallelism());
const rounds = Number(args.rounds);
const reps = Number(args.reps);
defaultRegistry().use(plugin);
if (!nativeStatus().available) throw new Error(`gemm bench needs the native backend: ${nativeStatus().message}`);
setNumThreads(threads);

/** [M, N, K, transA, transB, what]: the squares and the Qwen2-style training step's GEMMs (batch 4 x 512). */
const ALL_SHAPES: [number, number, number, 0 | 1, 0 | 1, string][] = [
  [1024, 1024, 1024, 0, 0, 'square'],
  [2048, 2048, 2048, 0, 0, 'square'],
  [2048, 1408, 512, 0, 1, 'gate/up fwd x W^T'],
  [2048, 512, 1408, 0, 0, 'gate/up bwd dX = dY W'],
  [1408, 512, 2048, 1, 0, 'gate/up bwd dW = dY^T X'],
  [2048, 512, 1408, 0, 1, 'down fwd'],
  [2048, 8192, 512, 0, 1, 'lm head fwd'],
  [2048, 512, 8192, 0, 0, 'lm head bwd dX'],
  [8192, 512, 2048, 1, 0, 'lm head bwd dW'],
];
const SHAPES = ALL_SHAPES.filter((s) => !args.only || s[5].includes(args.only));
if (SHAPES.length === 0)
  throw new Error(`--only '${args.only}' matches no shape (see ALL_SHAPES in ${import.meta.url})`);
const spec = (s: (typeof SHAPES)[number]) => s.slice(0, 5).join(',');

function randn(shape: number[]): Tensor {
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = Math.random() * 2 - 1;
  return tensor(v, { shape });
}

function ours(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of SHAPES) {
    const [m, n, k, ta, tb] = s;
    const a = randn(ta ? [k, m] : [m, k]);
    const b = randn(tb ? [n, k] : [k, n]);
    const opts = { transA: !!ta, transB: !!tb };
    matmul(a, b, opts).dispose();
    let best = Infinity;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      matmul(a, b, opts).dispose();
      best = Math.min(best, (performance.now() - t0) / 1000);
    }
    out[spec(s)] = best;
    a.dispose();
    b.dispose();
  }
  return out;
}

function torch(): Record<string, number> {
  const r = spawnSync(
    args.python!,
    [
      join(here, 'torch_bench.py'),
      '--threads',
      String(threads),
      '--part',
      'gemm',
      '--reps',
      String(reps),
      '--shapes',
      SHAPES.map(spec).join(';'),
    ],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  if (r.status !== 0) throw new Error(`torch_bench.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!).gemm;
}

const load0 = loadavg();
const bestOurs: Record<string, number> = {};
const bestTorch: Record<string, number> = {};
const ratios: Record<string, number[]> = {};
// The side that goes first alternates by round, and the FMA peak is re-measured after every round (the best is
// kept, like every other number here): one measurement can land in a slow moment of a shared host.
let peak = 0;
for (let r = 0; r < rounds; r++) {
  const torchFirst = r % 2 === 1;
  const t0 = torchFirst ? torch() : null;
  const o = ours();
  const t = t0 ?? torch();
  peak = Math.max(peak, fmaPeakGflops(threads, 0.25));
  for (const s of SHAPES.map(spec)) {
    bestOurs[s] = Math.min(bestOurs[s] ?? Infinity, o[s]!);
    bestTorch[s] = Math.min(bestTorch[s] ?? Infinity, t[s]!);
    ratios[s] = [...(ratios[s] ?? []), t[s]! / o[s]!];
  }
  console.log(`[gemm] round ${r + 1}/${rounds} done`);
}
const load1 = loadavg();
const gf = (s: (typeof SHAPES)[number], sec: number) => (2 * s[0] * s[1] * s[2]) / sec / 1e9;
const lines = [
  `# GEMM fp32: ours vs PyTorch (${new Date().toISOString()})`,
  '',
  `${nativeStatus().message}; ${threads} threads on both sides; fp32 FMA peak ${peak.toFixed(1)} GFLOP/s (best of one measurement per round).`,
  `Load average before/after: ${load0.map((x) => x.toFixed(2)).join(' ')} / ${load1.map((x) => x.toFixed(2)).join(' ')}.`,
  `${rounds} alternating rounds (the side that goes first alternates), best of ${reps} calls per shape per round. The ratio column is`,
  'best(ours)/best(PyTorch) over all rounds; "median round ratio" is the median of the per-round ratios.',
  '',
  '| shape M x N x K (tA,tB) | what | ours GFLOP/s | PyTorch GFLOP/s | ours/PyTorch | median round ratio | ours % of peak |',
  '|---|---|---|---|---|---|---|',
];
for (const s of SHAPES) {
  const k = spec(s);
  const o = gf(s, bestOurs[k]!);
  const t = gf(s, bestTorch[k]!);
  const rs = [...ratios[k]!].sort((a, b) => a - b);
  lines.push(
    `| ${s[0]}x${s[1]}x${s[2]} (${s[3]},${s[4]}) | ${s[5]} | ${o.toFixed(1)} | ${t.toFixed(1)} | ${(o / t).toFixed(2)}x | ${rs[Math.floor(rs.length / 2)]!.toFixed(2)}x | ${((100 * o) / peak).toFixed(1)}% |`,
  );
}
const md = `${lines.join('\n')}\n`;
console.log(md);
if (args.out) writeFileSync(args.out, md);
