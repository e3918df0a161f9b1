// Reference CPU kernels of optimizer steps (in place, no autograd).
import type { Registry } from '../../registry.js';
import type { Tensor } from '../../tensor.js';
import { read, store } from './util.js';

interface AdamWAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
  maximize: boolean;
  amsgrad: boolean;
}

/** A float32/float64 array that is the tensor's storage, or a compute copy written back by `flush`. */
function writable(t: Tensor): { data: Float32Array | Float64Array; flush(): void } {
  if (t.dtype === 'float32' || t.dtype === 'float64') {
    return { data: t.raw() as Float32Array | Float64Array, flush() {} };
  }
  const data = Float32Array.from(read(t));
  return { data, flush: () => store(data, t) };
}

/**
 * `torch.optim.AdamW` (single-tensor path) for one parameter:
 * p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). State stays in its own dtype (fp32);
 * the parameter is computed in float32 (float64 for float64) and rounded once.
 */
function adamwStepKernel(inputs: Tensor[], a: AdamWAttrs): Tensor {
  const [param, grad, expAvg, expAvgSq, maxSq] = inputs as [Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
  const p = writable(param);
  const m = writable(expAvg);
  const v = writable(expAvgSq);
  const vmax = maxSq ? writable(maxSq) : null;
  const g = read(grad);
  const f32 = param.dtype !== 'float64';
  const r = f32 ? Math.fround : (x: number) => x;
  const decay = r(1 - a.lr * a.weightDecay);
  const b1 = a.beta1;
  const b2 = a.beta2;
  const bc1 = 1 - b1 ** a.step;
  const bc2sqrt = Math.sqrt(1 - b2 ** a.step);
  const stepSize = a.lr / bc1;
  const sign = a.maximize ? -1 : 1;
  const pd = p.data;
  const md = m.data;
  const vd = v.data;
  const xd = vmax?.data;
  for (let i = 0; i < pd.length; i++) {
    const gi = sign * g[i]!;
    const pi = r(pd[i]! * decay);
    const mi = r(r(md[i]! * b1) + r((1 - b1) * gi));
    const vi = r(r(vd[i]! * b2) + r((1 - b2) * r(gi * gi)));
    md[i] = mi;
    vd[i] = vi;
    let s = vi;
    if (xd) {
      s = Math.max(xd[i]!, vi);
      xd[i] = s;
    }
    const denom = r(r(Math.sqrt(s) / bc2sqrt) + a.eps);
    pd[i] = pi - r(stepSize * r(mi / denom));
  }
  p.flush();
  m.flush();
  v.flush();
  vmax?.flush();
  return param;
}

/** Register the reference CPU kernels of optimizer steps (`adamwStep`). */
export function registerOptimKernels(r: Registry, source: string): void {
  r.registerKernel('cpu', 'adamwStep', adamwStepKernel as (inputs: Tensor[], attrs: any) => Tensor, {
    priority: 0,
    source,
  });
}
