// Attention forward and backward kernels alone (the registry's best: the native ones once kernels-cpu is built),
// causal, at the bench shape (B1 S1024 H8 D64), the training step's GQA shape (B4 S512, 8 query heads on 2 KV
// heads, D64) and one long MQA sequence (B1 S2048, 8 query heads on 1 KV head): best of --reps calls, ms and
// GFLOP/s (forward 2·S²·D·H per sequence for causal, backward 2.5x).
//   node --experimental-strip-types bench/cpu/attention.ts [--reps 6]   (after building core and kernels-cpu dist)
import { parseArgs } from 'node:util';
import { defaultRegistry, type Tensor, tensor } from '../../packages/core/dist/index.js';
import { plugin } from '../../packages/kernels-cpu/dist/index.js';

const { values: args } = parseArgs({ options: { reps: { type: 'string', default: '6' } } });
const registry = defaultRegistry().use(plugin);
const fwd = registry.kernel('attention', 'cpu');
const bwd = registry.kernel('attentionBackward', 'cpu');
function randn(shape: number[]): Tensor {
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = Math.random() - 0.5;
  return tensor(v, { shape });
}
for (const [B, S, H, KV, D] of [
  [1, 1024, 8, 8, 64],
  [4, 512, 8, 2, 64],
  [1, 2048, 8, 1, 64],
] as const) {
  const [q, k, v, go] = [randn([B, S, H, D]), randn([B, S, KV, D]), randn([B, S, KV, D]), randn([B, S, H, D])];
  const attrs = { causal: true, scale: 1 / Math.sqrt(D) };
  const flops = B * H * 2 * S * S * D;
  let bestF = Infinity;
  let bestB = Infinity;
  for (let i = 0; i < Number(args.reps); i++) {
    let t0 = performance.now();
    const [o, lse] = fwd([q, k, v], attrs) as Tensor[];
    bestF = Math.min(bestF, performance.now() - t0);
    t0 = performance.now();
    const grads = bwd([q, k, v, o!, lse!, go], attrs) as Tensor[];
    bestB = Math.min(bestB, performance.now() - t0);
    for (const t of [o!, lse!, ...grads]) t.dispose();
  }
  console.log(
    `B${B} S${S} Hq${H} Hkv${KV} D${D} causal: forward ${bestF.toFixed(1)} ms (${(flops / bestF / 1e6).toFixed(1)} GFLOP/s), ` +
      `backward ${bestB.toFixed(1)} ms (${((2.5 * flops) / bestB / 1e6).toFixed(1)} GFLOP/s)`,
  );
  for (const t of [q, k, v, go]) t.dispose();
}
