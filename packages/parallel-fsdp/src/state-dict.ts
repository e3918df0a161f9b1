// Full state dicts of a sharded model: gathered for export, sharded on load.

import { cast, keep, type nn, noGrad, sameShape, Tensor } from '@omnitrain/core';
import { unitOfParam, unitsOf } from './fully-shard.js';

function copyOf(t: Tensor): Tensor {
  return noGrad(() => {
    const c = keep(Tensor.empty(t.shape, t.dtype, t.device));
    if (t.numel && t.device !== 'meta') c.raw().set(t.raw() as never);
    return c;
  });
}

/**
 * Collective (every rank of the shard group calls it): the module's full state dict — the
 * parameters gathered from their shards (one flat all-gather per unit, in the master dtype),
 * and copies of the persistent buffers — by fully qualified name, as `module.stateDict()` of
 * the unsharded model would give. The tensors are new: dispose them when done.
 */
export function fullStateDict(module: nn.Module): Record<string, Tensor> {
  const full = new Map<Tensor, Tensor>();
  for (const u of unitsOf(module)) {
    const gathered = u.gatherFull();
    u.params.forEach((p, i) => {
      full.set(p, gathered[i]!);
    });
  }
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(module.stateDict())) {
    let v = full.get(t);
    if (!v) {
      v = copyOf(t);
      full.set(t, v);
    }
    out[name] = v;
  }
  return out;
}

/**
 * Load a full (unsharded) state dict into a sharded module: each rank keeps its rows of every
 * parameter (Shard(0)); buffers are copied. Keys and shapes are checked like
 * `loadStateDict` with `strict`: nothing is loaded when something does not match.
 */
export function loadFullStateDict(module: nn.Module, sd: Record<string, Tensor> | Map<string, Tensor>): void {
  const given = sd instanceof Map ? sd : new Map(Object.entries(sd));
  const own = module.stateDict();
  const problems: string[] = [];
  for (const [k, t] of Object.entries(own)) {
    const src = given.get(k);
    const u = unitOfParam(t);
    const shape = u ? u.layouts[u.params.indexOf(t as nn.Parameter)]!.fullShape : t.shape;
    if (!src) problems.push(`missing key '${k}'`);
    else if (!sameShape(src.shape, shape)) {
      problems.push(
        `size mismatch for '${k}': state dict has ${JSON.stringify(src.shape)}, model ${JSON.stringify(shape)}`,
      );
    }
  }
  for (const k of given.keys()) if (!(k in own)) problems.push(`unexpected key '${k}'`);
  if (problems.length) throw new Error(`loadFullStateDict(${module.constructor.name}):\n  ${problems.join('\n  ')}`);
  for (const [k, t] of Object.entries(own)) {
    const src = given.get(k)!;
    const u = unitOfParam(t);
    if (u) u.loadFull(u.params.indexOf(t as nn.Parameter), src);
    else {
      noGrad(() => {
        const c = src.dtype === t.dtype ? src : cast(src, t.dtype);
        t.raw().set(c.raw() as never);
        if (c !== src) c.dispose();
      });
    }
  }
}
