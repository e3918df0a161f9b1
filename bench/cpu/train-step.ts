// One training step (forward, backward, AdamW) of the Qwen2-style bench model with our CPU backend.
// Prints one JSON line: step times, tokens/s, peak RSS, minor page faults per step, and (with --profile) a per-op
// kernel profile; --profile-matmul splits matmul by shape with its GFLOP/s.
// Run by bench.ts in its own process so that peak RSS is the step's own.
import { parseArgs } from 'node:util';
// The same decoder as the char-transformer example (it resolves @omnitrain/core to the same packages/core/dist).
import { CharTransformer } from '../../examples/char-transformer/model.ts';
import { defaultRegistry, manualSeed, optim, type Tensor, tensor, tidy } from '../../packages/core/dist/index.js';
import { nativeStatus, plugin } from '../../packages/kernels-cpu/dist/index.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    profile: { type: 'boolean', default: false },
    reference: { type: 'boolean', default: false },
    'profile-matmul': { type: 'boolean', default: false },
  },
});
const registry = defaultRegistry();
if (!args.reference) registry.use(plugin);
const cfg = { vocabSize: 8192, hidden: 512, layers: 8, heads: 8, kvHeads: 2, ffn: 1408, ropeTheta: 1e6 };
const batch = 4;
const seq = 512;
manualSeed(0);
const model = new CharTransformer(cfg);
const opt = new optim.AdamW(model.parameters(), { lr: 1e-3, weightDecay: 0.1, betas: [0.9, 0.95] });

// Per-op profile: a wrapper above every op's best kernel that times it.
const profile = new Map<string, { ms: number; calls: number; gflop: number }>();
/** [batch, M, N, K] of a matmul kernel call (inputs a, b with the transpose flags in attrs). */
function matmulDims(inputs: readonly Tensor[], attrs: Record<string, unknown>): number[] {
  const [a, b] = inputs as [Tensor, Tensor];
  const ta = !!attrs.transA;
  const tb = !!attrs.transB;
  const M = a.shape[a.ndim - (ta ? 1 : 2)]!;
  const K = a.shape[a.ndim - (ta ? 2 : 1)]!;
  const N = b.shape[b.ndim - (tb ? 2 : 1)]!;
  const batch = Math.max(a.numel / (M * K), b.numel / (K * N));
  return [batch, M, N, K];
}
function matmulKey(inputs: readonly Tensor[], attrs: Record<string, unknown>): string {
  const [batch, M, N, K] = matmulDims(inputs, attrs);
  const t = `${attrs.transA ? 1 : 0},${attrs.transB ? 1 : 0}`;
  return `matmul ${batch > 1 ? `${batch} x ` : ''}${M}x${N}x${K} (${t})`;
}
function matmulGflop(inputs: readonly Tensor[], attrs: Record<string, unknown>): number {
  const [batch, M, N, K] = matmulDims(inputs, attrs);
  return (2 * batch * M * N * K) / 1e9;
}
if (args.profile) {
  for (const op of registry.ops('cpu')) {
    const best = registry.kernels('cpu', op)[0]!;
    registry.registerKernel(
      'cpu',
      op,
      (inputs, attrs) => {
        const t0 = performance.now();
        const out = best.kernel(inputs, attrs);
        const key = op === 'matmul' && args['profile-matmul'] ? matmulKey(inputs, attrs) : op;
        const e = profile.get(key) ?? { ms: 0, calls: 0, gflop: 0 };
        e.ms += performance.now() - t0;
        e.calls++;
        if (key !== op) e.gflop += matmulGflop(inputs, attrs);
        profile.set(key, e);
        return out;
      },
      { priority: 1000, source: `profile(${best.source})` },
    );
  }
}

let seed = 1;
function rand(n: number, hi: number): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = seed % hi;
  }
  return out;
}
const pos = Array.from({ length: batch * seq }, (_, i) => i % seq);

function step(): number {
  const loss = tidy(() => {
    const ids = tensor(rand(batch * seq, cfg.vocabSize), { dtype: 'int32', shape: [batch, seq] });
    const labels = tensor(rand(batch * seq, cfg.vocabSize), { dtype: 'int32', shape: [batch, seq] });
    const positions = tensor(pos, { dtype: 'int32', shape: [batch, seq] });
    const l: Tensor = model.loss(ids, positions, labels);
    l.backward();
    return l.item();
  });
  opt.step();
  opt.zeroGrad();
  return loss;
}

const times: number[] = [];
const faults: number[] = [];
const losses: number[] = [];
const total = Number(args.warmup) + Number(args.steps);
for (let i = 0; i < total; i++) {
  if (i === Number(args.warmup)) profile.clear();
  const t0 = performance.now();
  const f0 = process.resourceUsage().minorPageFault;
  losses.push(step());
  if (i >= Number(args.warmup)) {
    times.push(performance.now() - t0);
    faults.push(process.resourceUsage().minorPageFault - f0);
  }
}
const sorted = [...times].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
const measured = times.length;
console.log(
  JSON.stringify({
    backend: args.reference ? 'core reference' : nativeStatus().message,
    stepMs: times,
    medianStepMs: median,
    tokensPerSec: (batch * seq) / (median / 1000),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    minorPageFaultsPerStep: faults,
    losses,
    profile: args.profile
      ? [...profile.entries()]
          .map(([op, e]) => ({
            op,
            msPerStep: e.ms / measured,
            callsPerStep: e.calls / measured,
            ...(e.gflop ? { gflops: e.gflop / (e.ms / 1000) } : {}),
          }))
          .sort((a, b) => b.msPerStep - a.msPerStep)
      : undefined,
  }),
);
