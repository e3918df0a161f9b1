// Gradient clipping by global norm on sharded gradients, and the optimizer check.

import { dispatch1, type nn, noGrad, optim, Tensor, tensor } from '@omnitrain/core';
import { isFullySharded, unitOfParam, unitsOf } from './fully-shard.js';

/** Finish the backward of every unit of `module` (reduce-scatter pending gradients, reshard). */
export function finalizeBackward(module: nn.Module): void {
  const us = unitsOf(module);
  for (let i = us.length - 1; i >= 0; i--) us[i]!.issueReduce();
  for (const u of us) u.waitReduce();
  for (const u of us) u.reshard();
}

/**
 * `clipGradNorm` over a sharded module: finishes pending reductions, sums the squared norms of
 * the local gradient shards, all-reduces that sum over the shard group (replicas of an HSDP
 * mesh hold the same shards, so they are not counted twice) and scales every shard by the
 * same coefficient. Returns the global norm before clipping, equal to the unsharded model's.
 */
export function clipGradNorm(module: nn.Module, maxNorm: number, opts: optim.ClipGradNormOptions = {}): number {
  finalizeBackward(module);
  const us = unitsOf(module);
  if (!us.length)
    throw new Error(`fsdp clipGradNorm(${module.constructor.name}): the module is not sharded (call fullyShard first)`);
  const group = us[0]!.shardGroup;
  const params = module.parameters();
  const unmanaged = params.filter((p) => !unitOfParam(p));
  // Unsharded parameters have the same gradient on every rank: count them on rank 0 only.
  const counted = group.rank === 0 ? params : params.filter((p) => unitOfParam(p));
  const total = optim.clipGradNorm(counted, Number.POSITIVE_INFINITY, {
    ...opts,
    allReduce: (v, op) => {
      const t = tensor([v], { dtype: 'float64' });
      group.allReduce(t, op).wait();
      const r = t.item();
      t.dispose();
      return r;
    },
  });
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1 || Number.isNaN(coef)) {
    noGrad(() => {
      for (const p of new Set([...counted, ...unmanaged])) {
        if (p.grad?.numel && p.grad.device !== 'meta') dispatch1('mul_', [p.grad], { value: coef });
      }
    });
  }
  return total;
}

/**
 * Check that `optimizer` steps the shards of `module`: every parameter it holds must be
 * managed by fullyShard, and any state it already has must have the shard's shape. Throws a
 * clear error for an optimizer built on the unsharded model (or stepped before sharding).
 */
export function checkOptimizer(optimizer: optim.Optimizer<{ lr: number }>, module: nn.Module): void {
  const names = new Map(module.namedParameters().map(([n, p]) => [p as Tensor, n] as const));
  for (const g of optimizer.paramGroups) {
    for (const p of g.params) {
      const name = names.get(p) ?? p.name ?? `#${p.id}`;
      if (!unitOfParam(p)) {
        throw new Error(
          `fsdp: optimizer parameter '${name}' ${JSON.stringify(p.shape)} is not sharded by fullyShard` +
            `${isFullySharded(module) ? '' : ' (the module is not sharded)'}; ` +
            "build the optimizer after fullyShard, on the sharded module's parameters()",
        );
      }
      const s = optimizer.state.get(p);
      for (const [k, v] of Object.entries(s ?? {})) {
        if (v instanceof Tensor && v.shape.join(',') !== p.shape.join(',')) {
          throw new Error(
            `fsdp: optimizer state '${k}' of '${name}' has shape ${JSON.stringify(v.shape)} but the parameter is sharded to ` +
              `${JSON.stringify(p.shape)}: the optimizer was built (and stepped) on the unsharded parameters; build it after fullyShard`,
          );
        }
      }
    }
  }
}
