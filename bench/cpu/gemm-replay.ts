// The training step's 168 GEMMs (bench model: 8 layers, hidden 512, FFN 1408, 8/2 heads, batch 4 x 512), replayed
// alone in step order through the registry's matmul, each layer with its own operands (so, as in the step, most
// operands come from memory rather than cache). Compare its GFLOP/s with the per-shape best of bench/cpu/gemm.ts
// and the matmul rows of the step profile to see how much of the in-step GEMM rate the framework costs.
//   node --experimental-strip-types bench/cpu/gemm-replay.ts   (after building core and kernels-cpu dist)
import { defaultRegistry, matmul, type Tensor, tensor } from '../../packages/core/dist/index.js';
import { plugin, setNumThreads } from '../../packages/kernels-cpu/dist/index.js';

defaultRegistry().use(plugin);
setNumThreads(Number(process.env.OMNITRAIN_NUM_THREADS ?? 2));
function randn(shape: number[]): Tensor {
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = Math.random() - 0.5;
  return tensor(v, { shape });
}
/** One matmul call: a, b and the transpose flags. */
type Call = [Tensor, Tensor, boolean, boolean];
const calls: Call[] = [];
/** The 2-D [tokens, features] view of a [4, 512, features] activation (weight gradients use it). */
const flat = (t: Tensor) => t.reshape([2048, t.shape[2]!]);
for (let layer = 0; layer < 8; layer++) {
  const x = randn([4, 512, 512]); // normed hidden states
  const h = randn([4, 512, 1408]); // SwiGLU output
  const [wq, wk, wg, wd] = [randn([512, 512]), randn([128, 512]), randn([1408, 512]), randn([512, 1408])];
  const [gq, gk, gg] = [randn([4, 512, 512]), randn([4, 512, 128]), randn([4, 512, 1408])];
  // Forward: q, k, v, o projections, gate, up, down (y = x W^T).
  for (const w of [wq, wk, wk, wq, wg, wg]) calls.push([x, w, false, true]);
  calls.push([h, wd, false, true]);
  // Backward of each: dX = dY W and dW = dY^T X.
  for (const [g, w] of [
    [gq, wq],
    [gk, wk],
    [gk, wk],
    [gq, wq],
    [gg, wg],
    [gg, wg],
  ] as const) {
    calls.push([g, w, false, false], [flat(g), flat(x), true, false]);
  }
  calls.push([gq, wd, false, false], [flat(gq), flat(h), true, false]);
}
let flops = 0;
for (const [a, b, ta, tb] of calls) {
  const M = a.shape[a.ndim - (ta ? 1 : 2)]!;
  const K = a.shape[a.ndim - (ta ? 2 : 1)]!;
  const N = b.shape[b.ndim - (tb ? 2 : 1)]!;
  flops += 2 * (a.numel / (M * K)) * M * N * K;
}
console.log(`${calls.length} calls, ${(flops / 1e9).toFixed(1)} GFLOP`);
for (let round = 0; round < 4; round++) {
  const t0 = performance.now();
  for (const [a, b, ta, tb] of calls) matmul(a, b, { transA: ta, transB: tb }).dispose();
  const ms = performance.now() - t0;
  console.log(`replay ${round + 1}: ${ms.toFixed(0)} ms, ${(flops / 1e6 / ms).toFixed(1)} GFLOP/s`);
}
