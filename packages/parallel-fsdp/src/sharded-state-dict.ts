// Sharded state dicts of a fullyShard'ed model: every rank describes the rows of dim 0 it owns
// (no gathering), for a sharded checkpoint format such as @omnitrain/checkpoint's 'dcp'
// (`dim0Shard(local, globalRows, rowStart)`). Loading writes into the same views, in place.

import { keep, type nn, noGrad, type optim, Tensor } from '@omnitrain/core';
import { unitOfParam } from './fully-shard.js';
import { validRows } from './shard-layout.js';

/**
 * This rank's rows `[rowStart, rowStart + local.shape[0])` of dim 0 of a tensor of shape
 * `globalShape`. `local` is a view of the rank's shard (padding rows excluded): reading it
 * reads the shard, writing it writes the shard.
 */
export interface RowShard {
  readonly kind: 'fsdp-rows';
  readonly local: Tensor;
  readonly globalShape: readonly number[];
  readonly globalRows: number;
  readonly rowStart: number;
}

/** Options of {@link shardedStateDict} and {@link shardedOptimStateDict}. */
export interface ShardedStateDictOptions {
  /**
   * With HSDP every replica holds the same shards. For a save, only replica 0 should describe
   * them (default false: other replicas get no sharded entries, so no chunk is written twice);
   * for a load every replica needs its targets (pass true).
   */
  allReplicas?: boolean;
}

/** True for values made by {@link shardedStateDict}. */
export function isRowShard(v: unknown): v is RowShard {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'fsdp-rows';
}

function rowView(p: Tensor, where: string, opts: ShardedStateDictOptions): RowShard | null | undefined {
  const u = unitOfParam(p);
  if (!u) return undefined;
  const i = u.params.indexOf(p as nn.Parameter);
  const l = u.layouts[i]!;
  if (u.state !== 'sharded') {
    throw new Error(`${where}: unit '${u.name}' is unsharded (parameter '${l.name}'); call it between steps`);
  }
  if (!opts.allReplicas && u.replicateGroup && u.replicateGroup.rank !== 0) return null;
  return rowsOf(u.shards[i]!, l, u.shardGroup.rank);
}

function rowsOf(t: Tensor, l: { rows: number; chunk: number; fullShape: number[] }, r: number): RowShard | null {
  const rows = validRows(l as never, r);
  if (rows <= 0) return null;
  const local = noGrad(() => keep(t.slice0(0, rows)));
  return { kind: 'fsdp-rows', local, globalShape: [...l.fullShape], globalRows: l.rows, rowStart: r * l.chunk };
}

/**
 * The module's state dict as this rank's rows: for every parameter managed by
 * {@link fullyShard} a {@link RowShard} viewing the rank's unpadded rows (no copy, no
 * communication); other tensors (buffers, unsharded parameters) as themselves. Ranks owning no
 * row of a parameter (and, with HSDP, replicas other than 0 unless `allReplicas`) have no entry
 * for it. Views share storage with the shards: loading into them loads the model in place.
 * Dispose the views with {@link disposeShardedStateDict} when done.
 */
export function shardedStateDict(
  module: nn.Module,
  opts: ShardedStateDictOptions = {},
): Record<string, RowShard | Tensor> {
  const where = `shardedStateDict(${module.constructor.name})`;
  const out: Record<string, RowShard | Tensor> = {};
  const seen = new Map<Tensor, RowShard | null | undefined>();
  for (const [name, t] of Object.entries(module.stateDict())) {
    if (!seen.has(t)) seen.set(t, rowView(t, where, opts));
    const v = seen.get(t);
    if (v === undefined) out[name] = t;
    else if (v !== null) out[name] = v;
  }
  return out;
}

/** What {@link shardedOptimStateDict} returns: per parameter name, its state (row shards and numbers). */
export interface ShardedOptimStateDict {
  state: Record<string, Record<string, RowShard | Tensor | number>>;
  paramGroups: Record<string, unknown>[];
}

/**
 * The optimizer's state as this rank's rows, keyed by parameter name (stable across world
 * sizes): moment tensors are shaped like the parameter shards, so each maps to the same rows.
 * With `create` (for loading into a fresh optimizer) state is first created for every parameter
 * (zero moments, step 0), so the views can be filled in place; then call
 * {@link loadShardedOptimStateDict} with the loaded tree to restore the numbers.
 */
export function shardedOptimStateDict(
  module: nn.Module,
  opt: optim.Optimizer<{ lr: number }>,
  opts: ShardedStateDictOptions & { create?: boolean } = {},
): ShardedOptimStateDict {
  const where = `shardedOptimStateDict(${module.constructor.name})`;
  const names = new Map<Tensor, string>();
  for (const [n, p] of module.namedParameters()) if (!names.has(p)) names.set(p, n);
  const state: ShardedOptimStateDict['state'] = {};
  const paramGroups: Record<string, unknown>[] = [];
  for (const g of opt.paramGroups) {
    const { params, ...hyper } = g;
    const ids: string[] = [];
    for (const p of params) {
      const name = names.get(p);
      if (!name) throw new Error(`${where}: the optimizer holds a parameter (#${p.id}) that the module does not`);
      ids.push(name);
      if (opts.create && !opt.state.has(p)) opt.state.set(p, blankStateLike(opt, p));
      const s = opt.state.get(p);
      if (!s) continue;
      const u = unitOfParam(p);
      const l = u?.layouts[u.params.indexOf(p as nn.Parameter)];
      if (u && !opts.allReplicas && u.replicateGroup && u.replicateGroup.rank !== 0) {
        // Another replica saves these rows; keep the numbers only.
        state[name] = Object.fromEntries(Object.entries(s).filter(([, v]) => !(v instanceof Tensor)));
        continue;
      }
      const entry: Record<string, RowShard | Tensor | number> = {};
      for (const [k, v] of Object.entries(s)) {
        if (!(v instanceof Tensor)) entry[k] = v;
        else if (u && l && v.numel === p.numel) {
          const rs = rowsOf(v, l, u.shardGroup.rank);
          if (rs) entry[k] = rs;
        } else entry[k] = v;
      }
      state[name] = entry;
    }
    paramGroups.push({ ...structuredClone(hyper), params: ids });
  }
  return { state, paramGroups };
}

function blankStateLike(opt: optim.Optimizer<{ lr: number }>, p: Tensor): Record<string, Tensor | number> {
  // The state layout of the optimizer's other parameters (or AdamW's when none exists yet).
  const sample = [...opt.state.values()][0];
  const keys = sample
    ? Object.entries(sample).map(([k, v]) => [k, v instanceof Tensor] as const)
    : ([
        ['step', false],
        ['expAvg', true],
        ['expAvgSq', true],
      ] as const);
  const out: Record<string, Tensor | number> = {};
  for (const [k, isT] of keys) out[k] = isT ? zeroLike(p) : 0;
  return out;
}

function zeroLike(p: Tensor): Tensor {
  return noGrad(() => {
    const t = keep(Tensor.empty(p.shape, p.dtype === 'float64' ? 'float64' : 'float32', p.device));
    if (t.numel) (t.raw() as unknown as { fill(v: number): void }).fill(0);
    return t;
  });
}

/**
 * After a checkpoint was loaded into the views of `shardedOptimStateDict(module, opt, { create: true })`,
 * restore the non-tensor state (step counts) and the groups' hyper-parameters from the loaded tree.
 */
export function loadShardedOptimStateDict(
  module: nn.Module,
  opt: optim.Optimizer<{ lr: number }>,
  loaded: ShardedOptimStateDict,
): void {
  const where = `loadShardedOptimStateDict(${module.constructor.name})`;
  const byName = new Map(module.namedParameters());
  if (loaded.paramGroups.length !== opt.paramGroups.length) {
    throw new Error(
      `${where}: ${loaded.paramGroups.length} parameter groups saved, the optimizer has ${opt.paramGroups.length}`,
    );
  }
  for (const [name, s] of Object.entries(loaded.state)) {
    const p = byName.get(name);
    if (!p) throw new Error(`${where}: state for parameter '${name}', which the module does not have`);
    const mine = opt.state.get(p);
    if (!mine) throw new Error(`${where}: no state for '${name}' (build the targets with { create: true })`);
    for (const [k, v] of Object.entries(s)) if (typeof v === 'number') mine[k] = v;
  }
  loaded.paramGroups.forEach((g, i) => {
    const { params: _ids, ...hyper } = g;
    Object.assign(opt.paramGroups[i]!, structuredClone(hyper));
  });
}

/** Dispose the views made by {@link shardedStateDict} / {@link shardedOptimStateDict} (not the shards they view). */
export function disposeShardedStateDict(tree: unknown): void {
  if (isRowShard(tree)) tree.local.dispose();
  else if (tree && typeof tree === 'object' && !(tree instanceof Tensor)) {
    for (const v of Object.values(tree)) disposeShardedStateDict(v);
  }
}
