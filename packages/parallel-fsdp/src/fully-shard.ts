// fullyShard: FSDP2's fully_shard. Applied to each unit (a model plan's blocks), then to the
// root last. Hooks: forward pre-hook unshards (and prefetches the next unit), forward hook
// reshards, backward pre-hook unshards again (and prefetches the previous unit), and when a
// unit's parameters all have their gradients the unit reduce-scatters them into sharded grads.

import { type DeviceMesh, type DType, isInitialized, nn, type ProcessGroup, Tensor, worldGroup } from '@omnitrain/core';
import { type FSDPEvent, FSDPUnit } from './fsdp-unit.js';

/** Mixed precision (FSDP2's MixedPrecisionPolicy). */
export interface MixedPrecision {
  /** Dtype parameters are all-gathered and computed in (e.g. 'bfloat16'); master shards keep theirs. */
  paramDtype?: DType;
  /** Dtype gradients are reduce-scattered in (e.g. 'float32'); default: the master shards' dtype. */
  reduceDtype?: DType;
}

/** Options of {@link fullyShard}. */
export interface FSDPOptions {
  /**
   * Device mesh: parameters are sharded over `dp_shard_sp` (dp_shard × ulysses); with
   * `dp_replicate > 1` gradients are also averaged across replicas (HSDP).
   */
  mesh?: DeviceMesh;
  /** A process group to shard over instead of a mesh (plain FSDP). Default: the world group. */
  group?: ProcessGroup;
  /** Free the full parameters after the unit's forward (default true; the root never does). */
  reshardAfterForward?: boolean;
  mixedPrecision?: MixedPrecision;
  /** Issue the next unit's all-gather while the current one computes (default true). */
  prefetch?: boolean;
  /** Device that meta parameters are materialised on, shard by shard (default 'cpu'). */
  device?: string;
  /** Name used in errors and traces (default: the module's path once the root is sharded). */
  name?: string;
  /** Receives every timeline event (all-gather issue/wait, forward/backward start...). */
  trace?: (e: FSDPEvent) => void;
}

/** What {@link fullyShard} returns: the module, with FSDP controls. */
export interface FSDPModule {
  readonly module: nn.Module;
  /** Make every parameter of the unit full (e.g. for evaluation without hooks). */
  unshard(): void;
  /** Back to shards. */
  reshard(): void;
  /** Reduce-scatter whatever gradients are pending and wait for them (runs after `backward` anyway). */
  finalizeBackward(): void;
}

const units = new WeakMap<nn.Module, FSDPUnit>();
const roots = new WeakMap<nn.Module, FSDPRoot>();
const managed = new WeakMap<Tensor, FSDPUnit>();

/** @internal The unit that manages `p`, if any. */
export function unitOfParam(p: Tensor): FSDPUnit | undefined {
  return managed.get(p);
}

/** @internal The units of a sharded module tree (root's timeline), or the module's own unit. */
export function unitsOf(module: nn.Module): FSDPUnit[] {
  const root = roots.get(module);
  if (root) return root.units;
  const out: FSDPUnit[] = [];
  for (const m of module.modules()) {
    const u = units.get(m);
    if (u) out.push(u);
  }
  return out;
}

/** True when `module` was passed to {@link fullyShard}. */
export function isFullySharded(module: nn.Module): boolean {
  return units.has(module);
}

/** Ties the units below a root together: forward order, prefetch, end of backward. */
class FSDPRoot {
  /** Non-root units in forward order (recorded on the first forward; module order before that). */
  order: FSDPUnit[];
  private recorded: FSDPUnit[] = [];
  private recording = true;
  constructor(
    readonly root: FSDPUnit,
    readonly units: FSDPUnit[],
    readonly prefetch: boolean,
  ) {
    this.order = units.filter((u) => u !== root);
  }

  beginForward(): void {
    this.finalizeBackward();
    if (this.recording && this.recorded.length) {
      this.order = this.recorded;
      this.recording = false;
    }
  }

  seen(u: FSDPUnit): void {
    if (this.recording && !this.recorded.includes(u)) this.recorded.push(u);
  }

  nextInForward(u: FSDPUnit | null): FSDPUnit | undefined {
    if (!this.prefetch) return undefined;
    const i = u ? this.order.indexOf(u) : -1;
    if (u && i < 0) return undefined;
    return this.order[i + 1];
  }

  prevInForward(u: FSDPUnit | null): FSDPUnit | undefined {
    if (!this.prefetch) return undefined;
    if (!u) return this.order[this.order.length - 1];
    const i = this.order.indexOf(u);
    return i > 0 ? this.order[i - 1] : undefined;
  }

  /** A unit issued its reduce-scatter: wait for the ones issued before (one in flight at a time). */
  afterIssue(u: FSDPUnit): void {
    for (const o of this.units) if (o !== u) o.waitReduce();
  }

  /** End of backward: reduce every unit still holding full gradients, wait for all, reshard. */
  finalizeBackward(): void {
    for (let i = this.units.length - 1; i >= 0; i--) this.units[i]!.issueReduce();
    for (const u of this.units) u.waitReduce();
    for (const u of this.units) u.reshard();
  }
}

function resolveGroups(opts: FSDPOptions, where: string): { shard: ProcessGroup; replicate: ProcessGroup | null } {
  if (opts.mesh && opts.group) throw new Error(`${where}: give either mesh or group, not both`);
  const world = isInitialized() ? worldGroup() : null;
  if (opts.mesh) {
    const mesh = opts.mesh;
    if (world && mesh.worldSize !== world.size) {
      throw new Error(
        `${where}: the mesh spans ${mesh.worldSize} ranks (dp_replicate ${mesh.sizes.dp_replicate} × dp_shard ${mesh.sizes.dp_shard} × ulysses ${mesh.sizes.ulysses}) ` +
          `but the world has ${world.size}; build the mesh with initDeviceMesh() so its sizes multiply to the world size`,
      );
    }
    if (world && mesh.rank !== world.rank) {
      throw new Error(`${where}: the mesh was made for rank ${mesh.rank} but this process is rank ${world.rank}`);
    }
    const shard = mesh.group('dp_shard_sp');
    const want = mesh.size('dp_shard_sp');
    if (shard.size !== want) {
      throw new Error(`${where}: the mesh's dp_shard_sp group has ${shard.size} ranks, expected ${want}`);
    }
    const replicate = mesh.sizes.dp_replicate > 1 ? mesh.group('dp_replicate') : null;
    return { shard, replicate };
  }
  const shard = opts.group ?? world;
  if (!shard)
    throw new Error(`${where}: no process group: call initProcessGroup() first, or pass { group } or { mesh }`);
  return { shard, replicate: null };
}

let counter = 0;

/**
 * Shard `module`'s parameters (those not already managed by a sharded descendant) with
 * Shard(0) over the mesh's `dp_shard_sp` group (or `group`), FSDP2 semantics. Call it on each
 * block first, then on the root: the root call ties the units together (forward order,
 * prefetch, end of backward). Parameters keep their identity; between steps each holds its
 * [ceil(dim0 / N), ...] shard, so an optimizer built afterwards on `module.parameters()` steps
 * the shards. Parameters on `meta` are materialised shard by shard from their recorded init.
 */
export function fullyShard(module: nn.Module, opts: FSDPOptions = {}): FSDPModule {
  const where = `fullyShard(${opts.name ?? module.constructor.name})`;
  if (!(module instanceof nn.Module)) throw new Error(`${where}: expected an nn.Module`);
  if (units.has(module)) {
    throw new Error(
      `${where}: this module is already sharded (fullyShard was called on it before); call it once per module`,
    );
  }
  const { shard, replicate } = resolveGroups(opts, where);
  // The module's own parameters: those not managed by an already sharded descendant.
  const own: [string, nn.Parameter][] = [];
  const childUnits: FSDPUnit[] = [];
  const skip = new Set<nn.Module>();
  for (const [path, m] of module.namedModules()) {
    if (m === module) continue;
    const u = units.get(m);
    if (u) {
      childUnits.push(u);
      skip.add(m);
      void path;
    }
  }
  const skipPaths = module
    .namedModules()
    .filter(([, m]) => skip.has(m))
    .map(([p]) => p);
  for (const [name, p] of module.namedParameters()) {
    if (skipPaths.some((sp) => name.startsWith(`${sp}.`))) continue;
    if (managed.has(p)) continue; // shared with a sharded unit (tied weights)
    own.push([name, p]);
  }
  const name = opts.name ?? (childUnits.length ? '' : `${module.constructor.name}#${counter++}`);
  const unit = new FSDPUnit(
    module,
    name,
    own.map(([, p]) => p),
    own.map(([n]) => n),
    shard,
    replicate,
    opts.mixedPrecision?.paramDtype ?? null,
    opts.mixedPrecision?.reduceDtype ?? null,
    opts.reshardAfterForward ?? true,
    true,
    opts.device ?? 'cpu',
  );
  for (const [, p] of own) managed.set(p, unit);
  units.set(module, unit);
  // Until a parent is sharded, this unit is a root of its own; sharding a parent adopts it.
  const paths = new Map(module.namedModules().map(([p, m]) => [m, p] as const));
  const all = [unit, ...childUnits];
  for (const u of childUnits) {
    u.isRoot = false;
    roots.delete(u.module);
    if (u.name.includes('#') || u.name === '') u.name = paths.get(u.module) ?? u.name;
  }
  const root = new FSDPRoot(unit, all, opts.prefetch ?? true);
  roots.set(module, root);
  for (const u of all) {
    (u as unknown as { root: FSDPRoot }).root = root;
    if (opts.trace) u.trace = (e) => opts.trace!({ t: performance.now(), ...e });
  }
  installHooks(module, unit);
  return {
    module,
    unshard: () => unit.unshard(),
    reshard: () => unit.reshard(),
    finalizeBackward: () => rootOf(unit)?.finalizeBackward(),
  };
}

function rootOf(u: FSDPUnit): FSDPRoot | null {
  return (u as unknown as { root?: FSDPRoot }).root ?? null;
}

function installHooks(module: nn.Module, unit: FSDPUnit): void {
  const emit = (kind: FSDPEvent['kind']) => unit.trace?.({ unit: unit.name, kind });
  const done = new Set<Tensor>();
  const trainable = unit.params.filter((p) => p.requiresGrad);

  module.registerForwardPreHook(() => {
    const r = rootOf(unit);
    if (unit.isRoot) r?.beginForward();
    else r?.seen(unit);
    unit.unshard();
    emit('forward-start');
    // Prefetch: the next unit's all-gather runs while this one computes.
    const next = r?.nextInForward(unit.isRoot ? null : unit);
    next?.issueAllGather(true);
    return undefined;
  });
  module.registerForwardHook(() => {
    emit('forward-end');
    // Free the full parameters' bytes (autograd keeps the storage; the pre-backward hook refills it).
    if (unit.reshardAfterForward && !unit.isRoot) unit.reshard(true);
    return undefined;
  });
  module.registerFullBackwardPreHook(() => {
    const r = rootOf(unit);
    emit('backward-start');
    unit.unshard();
    unit.needsReduce = true;
    done.clear();
    const prev = r?.prevInForward(unit.isRoot ? null : unit);
    prev?.issueAllGather(true);
    return undefined;
  });
  // A unit below a root reduce-scatters as soon as all its parameters have their gradients
  // (overlapping with the rest of backward); a root finishes when its outputs' backward returns.
  for (const p of trainable) {
    p.registerPostAccumulateGradHook(() => {
      if (unit.isRoot || !unit.needsReduce) return;
      done.add(p);
      if (done.size === trainable.length) {
        done.clear();
        unit.issueReduce();
        const r = rootOf(unit);
        if (r) r.afterIssue(unit);
        else unit.waitReduce();
      }
    });
  }
  {
    // The end of backward: wrap `backward` of the root's outputs (PyTorch queues a callback).
    const call = module.call.bind(module) as (...a: unknown[]) => unknown;
    (module as unknown as { call: (...a: unknown[]) => unknown }).call = (...args: unknown[]) => {
      const out = call(...args);
      for (const t of tensorsIn(out)) {
        if (!t.requiresGrad) continue;
        Object.defineProperty(t, 'backward', {
          configurable: true,
          value: (g?: Tensor) => {
            Tensor.prototype.backward.call(t, g);
            if (unit.isRoot) rootOf(unit)?.finalizeBackward();
          },
        });
      }
      return out;
    };
  }
}

function tensorsIn(v: unknown): Tensor[] {
  if (v instanceof Tensor) return [v];
  if (Array.isArray(v)) return v.filter((x): x is Tensor => x instanceof Tensor);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.values(v).filter((x): x is Tensor => x instanceof Tensor);
  }
  return [];
}
