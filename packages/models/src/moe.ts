// Qwen3-MoE sparse MLP: a linear router (`gate`), top-k routing on softmax probabilities, and
// experts held as stacked weights [E, ...] run by core's groupedMatmul; plus Hugging Face's
// load-balancing loss.
import {
  add,
  cast,
  div,
  empty,
  expand,
  gather,
  groupedMatmul,
  indexSelect,
  mul,
  nn,
  scatterAdd,
  softmax,
  sum,
  swiglu,
  type Tensor,
  tensor,
  zeros,
} from '@omnitrain/core';
import type { LayerContext } from './attention.js';
import type { MoeConfig } from './config.js';

function stacked(shape: number[], fanIn: number, opts: nn.LayerOptions): nn.Parameter {
  const p = nn.parameter(empty(shape, { dtype: opts.dtype ?? 'float32', device: opts.device ?? 'cpu' }));
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  nn.init.uniform_(p, -bound, bound, { generator: opts.generator });
  return p;
}

/**
 * The experts of one sparse layer as stacked `nn.Linear` weights: `gate_proj` and `up_proj`
 * [E, I, H], `down_proj` [E, H, I]. Hugging Face stores them per expert
 * (`experts.{e}.gate_proj.weight`); the parallel plan maps the names both ways.
 */
export class Experts extends nn.Module {
  readonly numExperts: number;
  gateProj: nn.Parameter;
  upProj: nn.Parameter;
  downProj: nn.Parameter;

  constructor(numExperts: number, hidden: number, intermediate: number, opts: nn.LayerOptions = {}) {
    super();
    this.numExperts = numExperts;
    this.gateProj = this.registerParameter('gate_proj', stacked([numExperts, intermediate, hidden], hidden, opts));
    this.upProj = this.registerParameter('up_proj', stacked([numExperts, intermediate, hidden], hidden, opts));
    this.downProj = this.registerParameter(
      'down_proj',
      stacked([numExperts, hidden, intermediate], intermediate, opts),
    );
  }

  /** Rows `x` [N, H] grouped by expert (`groupSizes` int32 [E]) → [N, H]. */
  override forward(x: Tensor, groupSizes: Tensor): Tensor {
    const g = groupedMatmul(x, this.gateProj, groupSizes);
    const u = groupedMatmul(x, this.upProj, groupSizes);
    return groupedMatmul(swiglu(g, u), this.downProj, groupSizes);
  }
}

/** Top-k of each row of `probs` [T, E] (descending; ties to the lower index). */
export function topK(probs: ArrayLike<number>, rows: number, cols: number, k: number): Int32Array {
  const out = new Int32Array(rows * k);
  const idx = Array.from({ length: cols }, (_, i) => i);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    const sorted = idx.slice().sort((a, b) => probs[base + b]! - probs[base + a]! || a - b);
    for (let j = 0; j < k; j++) out[r * k + j] = sorted[j]!;
  }
  return out;
}

/**
 * Qwen3-MoE sparse MLP (`mlp` of a sparse layer): `gate` router [E, H], top-k experts per token
 * on `softmax(router logits)` (float32), optionally renormalised (`norm_topk_prob`), weights cast
 * to the hidden dtype, expert outputs summed with those weights. Records the router logits and
 * the chosen experts in the layer context.
 */
export class SparseMoeBlock extends nn.Module {
  readonly moe: MoeConfig;
  gate: nn.Linear;
  experts: Experts;

  constructor(hidden: number, moe: MoeConfig, opts: nn.LayerOptions = {}) {
    super();
    this.moe = moe;
    this.gate = new nn.Linear(hidden, moe.numExperts, { ...opts, bias: false });
    this.experts = new Experts(moe.numExperts, hidden, moe.moeIntermediateSize, opts);
  }

  override forward(x: Tensor, ctx: LayerContext): Tensor {
    const shape = x.shape;
    const h = shape[shape.length - 1]!;
    const x2 = x.reshape(-1, h);
    const t = x2.shape[0]!;
    const e = this.moe.numExperts;
    const k = this.moe.numExpertsPerTok;
    const logits = this.gate.call(x2); // [T, E]
    ctx.routerLogits.push(logits);
    const probs = softmax(logits.dtype === 'float32' ? logits : cast(logits, 'float32'), -1);
    const selected = topK(probs.toTypedArray(), t, e, k);
    ctx.routing.push(selected);
    const selT = tensor(selected, { dtype: 'int32', shape: [t, k], device: x.device });
    let w = gather(probs, 1, selT); // [T, K] float32
    if (this.moe.normTopkProb) w = div(w, sum(w, -1, true));
    if (w.dtype !== x.dtype) w = cast(w, x.dtype);
    // Sort the (token, slot) pairs by expert (stable), so each expert's rows are contiguous.
    const counts = new Int32Array(e);
    for (const s of selected) counts[s]!++;
    const start = new Int32Array(e);
    for (let i = 1; i < e; i++) start[i] = start[i - 1]! + counts[i - 1]!;
    const order = new Int32Array(t * k);
    const tokens = new Int32Array(t * k);
    for (let p = 0; p < t * k; p++) {
      const r = start[selected[p]!]!++;
      order[r] = p;
      tokens[r] = Math.floor(p / k);
    }
    const dev = { dtype: 'int32' as const, device: x.device };
    const tokenIdx = tensor(tokens, { ...dev, shape: [t * k] });
    const rows = indexSelect(x2, 0, tokenIdx);
    const y = this.experts.call(rows, tensor(counts, { ...dev, shape: [e] }));
    const rw = indexSelect(w.reshape(t * k), 0, tensor(order, { ...dev, shape: [t * k] })).reshape(t * k, 1);
    const weighted = mul(y, rw);
    const index = expand(tokenIdx.reshape(t * k, 1), [t * k, h]);
    const out = scatterAdd(zeros([t, h], { dtype: x.dtype, device: x.device }), 0, index, weighted);
    return out.reshape(shape);
  }
}

/**
 * Hugging Face's `load_balancing_loss_func` (without attention mask): with the router logits
 * of every sparse layer concatenated to [L*T, E], `E * sum_e f_e * P_e`, where `f_e` is the
 * fraction of (token, slot) choices of expert e among the L*T tokens (top-k on the softmax) and
 * `P_e` the mean router probability of expert e. Differentiable through `P`.
 *
 * @param routerLogits each sparse layer's router logits [T, E]
 * @param routing each layer's chosen experts (T x k), as recorded by the forward
 */
export function loadBalancingLoss(routerLogits: Tensor[], routing: Int32Array[], numExperts: number): Tensor {
  const tokens = routerLogits.reduce((n, l) => n + l.shape[0]!, 0);
  const counts = new Float64Array(numExperts);
  for (const sel of routing) for (const s of sel) counts[s]!++;
  const frac = Array.from(counts, (c) => c / tokens);
  const dev = routerLogits[0]!.device;
  let total: Tensor | null = null;
  for (const l of routerLogits) {
    const p = sum(softmax(l.dtype === 'float32' ? l : cast(l, 'float32'), -1), 0);
    total = total ? add(total, p) : p;
  }
  const pMean = div(total!, tokens);
  const f = tensor(frac, { shape: [numExperts], device: dev });
  return mul(sum(mul(pMean, f)), numExperts);
}
