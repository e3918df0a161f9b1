// Activation checkpointing: run a block without keeping its activations, recompute it in backward.

import { tidy } from '../memory.js';
import { defaultGenerator } from '../rng/generator.js';
import { Tensor } from '../tensor.js';
import { runBackward } from './engine.js';
import { enableGrad, isGradEnabled, noGrad } from './grad-mode.js';
import { record } from './node.js';

/**
 * Activation checkpointing (`torch.utils.checkpoint`, reentrant flavour): runs `fn(...args)`
 * without recording the tape (its intermediate tensors are freed at once) and records one node.
 * In backward that node recomputes `fn` with grad enabled on detached copies of the tensor
 * arguments and back-propagates the output gradients through it: gradients of the arguments
 * flow on, and parameters used inside `fn` get their `.grad` accumulated (and their hooks run)
 * exactly as without checkpointing. Non-tensor arguments are passed as they are.
 *
 * The default generator's state is restored for the recomputation, so random draws inside
 * `fn` repeat. When grad mode is off or no tensor argument requires grad, `fn` simply runs
 * normally (so parameters inside still get gradients; nothing is saved by checkpointing then).
 *
 * `fn` must return a tensor or an array of tensors; it must be deterministic.
 */
export function checkpoint<A extends unknown[], R extends Tensor | Tensor[]>(fn: (...args: A) => R, ...args: A): R {
  const positions: number[] = [];
  args.forEach((a, i) => {
    if (a instanceof Tensor) positions.push(i);
  });
  const inputs = positions.map((i) => args[i] as Tensor);
  const requires = inputs.map((t) => t.requiresGrad);
  if (!isGradEnabled() || !requires.some(Boolean)) return fn(...args);

  const generator = defaultGenerator();
  const rngBefore = generator.getState();
  const out = noGrad(() => tidy(() => fn(...args)));
  const outs = (Array.isArray(out) ? out : [out]) as Tensor[];
  // An output that is an argument gets its own handle, so the argument keeps its place on the tape.
  const results = outs.map((o) => {
    if (!(o instanceof Tensor)) throw new Error('checkpoint: fn must return a tensor or an array of tensors');
    return inputs.includes(o) ? o.detach() : o;
  });
  // Non-tensor arguments only; tensors come back through `saved`.
  const template: unknown[] = args.map((a) => (a instanceof Tensor ? null : a));

  record(
    'CheckpointBackward',
    inputs,
    results,
    (grads, saved) =>
      tidy(() => {
        const rngAfter = generator.getState();
        generator.setState(rngBefore);
        try {
          const leaves = saved.map((s, k) => {
            const d = s.detach();
            return requires[k] ? d.requiresGrad_(true) : d;
          });
          const again = [...template];
          positions.forEach((p, k) => {
            again[p] = leaves[k];
          });
          const re = enableGrad(() => fn(...(again as A)));
          const reOuts = (Array.isArray(re) ? re : [re]) as Tensor[];
          const roots: Tensor[] = [];
          const rootGrads: Tensor[] = [];
          reOuts.forEach((o, i) => {
            const g = grads[i];
            if (g && o.requiresGrad) {
              roots.push(o);
              rootGrads.push(g);
            }
          });
          if (roots.length) runBackward(roots, rootGrads);
          return leaves.map((l, k) => {
            const g = l.grad;
            l.grad = null;
            if (requires[k]) return g;
            g?.dispose();
            return null;
          });
        } finally {
          generator.setState(rngAfter);
        }
      }),
    inputs,
  );
  return (Array.isArray(out) ? results : results[0]) as R;
}
