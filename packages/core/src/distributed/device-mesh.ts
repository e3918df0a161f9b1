import type { ProcessGroup } from './process-group.js';

/** Dimensions of the dense mesh, outermost first (VeOmni's order; `ep` lives in the expert mesh). */
export const MESH_DIMS = ['dp_replicate', 'dp_shard', 'ulysses'] as const;
/** Dimensions of the expert mesh, outermost first (`ep_replicate` only when `dp_replicate > 1`). */
export const EXPERT_MESH_DIMS = ['ep_replicate', 'ep_fsdp', 'ep'] as const;

/** Flattened views of the dense mesh and the dims each one spans. */
export const FLATTENED_VIEWS: Readonly<Record<string, readonly string[]>> = {
  /** Data loading: replicate × shard. */
  dp: ['dp_replicate', 'dp_shard'],
  /** Parameter sharding (FSDP): shard × ulysses. */
  dp_shard_sp: ['dp_shard', 'ulysses'],
  /** Sequence parallel. */
  sp: ['ulysses'],
  /** Loss / metric reduction: replicate × shard × ulysses. */
  dp_sp: ['dp_replicate', 'dp_shard', 'ulysses'],
  /** Every rank. */
  world: ['dp_replicate', 'dp_shard', 'ulysses'],
};

/** Sizes of a mesh, as in a training config (VeOmni's `accelerator` sizes). */
export interface DeviceMeshConfig {
  /** HSDP replicas (default 1). */
  dp_replicate?: number;
  /** FSDP shards; `-1` or omitted derives it as world / (dp_replicate × ulysses). */
  dp_shard?: number;
  /** Ulysses sequence-parallel degree (default 1). */
  ulysses?: number;
  /** Expert-parallel degree (default 1); the expert mesh is [ep_replicate?, ep_fsdp, ep]. */
  ep?: number;
  /** Attention heads, checked against `ulysses` when given. */
  numHeads?: number;
  /** Key/value heads, checked against `ulysses` when given (GQA rule of VeOmni). */
  numKvHeads?: number;
  /** Routed experts, checked against `ep` when given. */
  numExperts?: number;
}

/** Validated, fully resolved sizes. */
export interface MeshSizes {
  worldSize: number;
  dp_replicate: number;
  dp_shard: number;
  ulysses: number;
  ep: number;
  ep_fsdp: number;
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (n % i === 0) out.push(i);
  return out;
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1) throw new Error(`DeviceMesh: ${name} must be a positive integer, got ${v}`);
  return x;
}

/** Check a mesh config against the world size; errors say what to change. */
export function resolveMeshSizes(config: DeviceMeshConfig, worldSize: number): MeshSizes {
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new Error(`DeviceMesh: world size must be >= 1, got ${worldSize}`);
  const dp_replicate = positiveInt('dp_replicate', config.dp_replicate, 1);
  const ulysses = positiveInt('ulysses', config.ulysses, 1);
  const ep = positiveInt('ep', config.ep, 1);
  let dp_shard: number;
  if (config.dp_shard === undefined || config.dp_shard === -1) {
    const rest = dp_replicate * ulysses;
    if (worldSize % rest !== 0) {
      throw new Error(
        `DeviceMesh: cannot derive dp_shard: world size ${worldSize} is not divisible by dp_replicate(${dp_replicate}) × ulysses(${ulysses}) = ${rest}; ` +
          `choose dp_replicate × ulysses among the divisors of ${worldSize}: ${divisors(worldSize).join(', ')}`,
      );
    }
    dp_shard = worldSize / rest;
  } else {
    dp_shard = positiveInt('dp_shard', config.dp_shard, 1);
    const product = dp_replicate * dp_shard * ulysses;
    if (product !== worldSize) {
      const fit = worldSize % (dp_replicate * ulysses) === 0 ? worldSize / (dp_replicate * ulysses) : null;
      throw new Error(
        `DeviceMesh: dp_replicate(${dp_replicate}) × dp_shard(${dp_shard}) × ulysses(${ulysses}) = ${product}, but the world size is ${worldSize}; ` +
          (fit !== null
            ? `set dp_shard to ${fit} (or -1 to derive it)`
            : `change the sizes so that their product is ${worldSize} (dp_shard = -1 derives it)`),
      );
    }
  }
  if (config.numHeads !== undefined && config.numHeads % ulysses !== 0) {
    throw new Error(
      `DeviceMesh: numHeads ${config.numHeads} is not divisible by ulysses ${ulysses}; ` +
        `choose ulysses among ${divisors(config.numHeads).join(', ')}`,
    );
  }
  if (config.numKvHeads !== undefined && ulysses > 1) {
    const kv = config.numKvHeads;
    const ok = ulysses > kv ? ulysses % kv === 0 : kv % ulysses === 0;
    if (!ok) {
      throw new Error(
        `DeviceMesh: numKvHeads ${kv} and ulysses ${ulysses} do not fit: ulysses must divide numKvHeads or be a multiple of it ` +
          '(KV heads are repeated up to ulysses)',
      );
    }
  }
  const shardSp = dp_shard * ulysses;
  if (shardSp % ep !== 0) {
    throw new Error(
      `DeviceMesh: ep ${ep} must divide dp_shard × ulysses = ${shardSp} (experts are sharded inside the FSDP group); ` +
        `choose ep among ${divisors(shardSp).join(', ')}`,
    );
  }
  if (config.numExperts !== undefined && config.numExperts % ep !== 0) {
    throw new Error(
      `DeviceMesh: numExperts ${config.numExperts} is not divisible by ep ${ep}; ` +
        `choose ep among ${divisors(config.numExperts)
          .filter((d) => shardSp % d === 0)
          .join(', ')}`,
    );
  }
  return { worldSize, dp_replicate, dp_shard, ulysses, ep, ep_fsdp: shardSp / ep };
}

/** Coordinates of `rank` in a row-major mesh of `shape` (last dim innermost). */
export function meshCoords(shape: readonly number[], rank: number): number[] {
  const coords = new Array<number>(shape.length);
  let r = rank;
  for (let i = shape.length - 1; i >= 0; i--) {
    coords[i] = r % shape[i]!;
    r = Math.floor(r / shape[i]!);
  }
  return coords;
}

/** Rank of `coords` in a row-major mesh of `shape`. */
export function meshRank(shape: readonly number[], coords: readonly number[]): number {
  let r = 0;
  for (let i = 0; i < shape.length; i++) r = r * shape[i]! + coords[i]!;
  return r;
}

/**
 * The group of `rank` along `dims` (indices into `shape`): every rank that differs from it only in
 * those dims, in group-rank order (row-major over `dims`).
 */
export function meshGroupOf(shape: readonly number[], dims: readonly number[], rank: number): number[] {
  const base = meshCoords(shape, rank);
  const sub = dims.map((d) => shape[d]!);
  const n = sub.reduce((a, b) => a * b, 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = meshCoords(sub, i);
    const coords = base.slice();
    dims.forEach((d, j) => {
      coords[d] = c[j]!;
    });
    out.push(meshRank(shape, coords));
  }
  return out;
}

/** Every group along `dims`: a partition of all ranks of `shape`, ordered by their first member. */
export function meshGroups(shape: readonly number[], dims: readonly number[]): number[][] {
  const world = shape.reduce((a, b) => a * b, 1);
  const seen = new Set<number>();
  const out: number[][] = [];
  for (let r = 0; r < world; r++) {
    if (seen.has(r)) continue;
    const g = meshGroupOf(shape, dims, r);
    for (const x of g) seen.add(x);
    out.push(g);
  }
  return out;
}

/** Creates the process group for a set of global ranks (normally `newGroup`). */
export type GroupFactory = (ranks: readonly number[], name: string) => ProcessGroup;

/**
 * The dense mesh `[dp_replicate, dp_shard, ulysses]` and the expert mesh `[ep_replicate?, ep_fsdp, ep]`
 * over the same global ranks, with flattened views (`dp`, `dp_shard_sp`, `sp`, `dp_sp`, `world`).
 * Membership is pure arithmetic ({@link DeviceMesh.groupRanks}); process groups are created on first
 * use by {@link DeviceMesh.group} and cached. Only the members of a group create it, so every member
 * must ask for the same dims (in the same order) — a rank that never asks leaves its peers waiting
 * until the rendezvous timeout.
 */
export class DeviceMesh {
  readonly sizes: MeshSizes;
  private readonly cache = new Map<string, ProcessGroup>();

  constructor(
    config: DeviceMeshConfig,
    /** World size. */
    readonly worldSize: number,
    /** This process's global rank. */
    readonly rank: number,
    private readonly factory?: GroupFactory,
    /** Groups to reuse, by view name (e.g. `{ world: worldGroup }`). */
    private readonly seeded: Readonly<Record<string, ProcessGroup>> = {},
  ) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new Error(`DeviceMesh: rank ${rank} is outside the world of size ${worldSize}`);
    }
    this.sizes = resolveMeshSizes(config, worldSize);
    for (const [k, g] of Object.entries(seeded)) this.cache.set(k, g);
  }

  /** Shape of the dense mesh. */
  get shape(): [number, number, number] {
    return [this.sizes.dp_replicate, this.sizes.dp_shard, this.sizes.ulysses];
  }

  /** Shape of the expert mesh (with `ep_replicate` first, size 1 when there is no HSDP). */
  get expertShape(): [number, number, number] {
    return [this.sizes.dp_replicate, this.sizes.ep_fsdp, this.sizes.ep];
  }

  /** Names accepted by {@link groupRanks}/{@link group}. */
  static readonly names: readonly string[] = [...MESH_DIMS, ...Object.keys(FLATTENED_VIEWS), ...EXPERT_MESH_DIMS];

  private resolve(name: string): { shape: readonly number[]; dims: number[] } {
    const dense = MESH_DIMS as readonly string[];
    const i = dense.indexOf(name);
    if (i >= 0) return { shape: this.shape, dims: [i] };
    const view = FLATTENED_VIEWS[name];
    if (view) return { shape: this.shape, dims: view.map((d) => dense.indexOf(d)) };
    const e = (EXPERT_MESH_DIMS as readonly string[]).indexOf(name);
    if (e >= 0) return { shape: this.expertShape, dims: [e] };
    throw new Error(`DeviceMesh: unknown dimension '${name}'; known: ${DeviceMesh.names.join(', ')}`);
  }

  /** Global ranks of this rank's group along `name`, in group-rank order (pure; no processes needed). */
  groupRanks(name: string, rank = this.rank): number[] {
    const { shape, dims } = this.resolve(name);
    return meshGroupOf(shape, dims, rank);
  }

  /** Every group along `name` (a partition of all ranks). */
  allGroups(name: string): number[][] {
    const { shape, dims } = this.resolve(name);
    return meshGroups(shape, dims);
  }

  /** Size of the groups along `name`. */
  size(name: string): number {
    return this.groupRanks(name).length;
  }

  /** This rank's rank inside its group along `name`. */
  localRank(name: string, rank = this.rank): number {
    return this.groupRanks(name, rank).indexOf(rank);
  }

  /** Coordinates of `rank` in the dense mesh, by dim name. */
  coords(rank = this.rank): Record<(typeof MESH_DIMS)[number], number> {
    const c = meshCoords(this.shape, rank);
    return { dp_replicate: c[0]!, dp_shard: c[1]!, ulysses: c[2]! };
  }

  /** The process group of this rank along `name`, created on first use and cached. */
  group(name: string): ProcessGroup {
    const cached = this.cache.get(name);
    if (cached) return cached;
    if (!this.factory)
      throw new Error(`DeviceMesh: no process groups (create the mesh with initDeviceMesh or a factory)`);
    const ranks = this.groupRanks(name);
    // Groups with the same members share one process group (e.g. dp_shard_sp == dp_shard when ulysses = 1).
    for (const g of this.cache.values()) {
      if (g.ranks.length === ranks.length && g.ranks.every((r, i) => r === ranks[i])) {
        this.cache.set(name, g);
        return g;
      }
    }
    const g = this.factory(ranks, name);
    this.cache.set(name, g);
    return g;
  }

  /** Destroy the sub-groups this mesh created. */
  destroy(): void {
    const seen = new Set<ProcessGroup>(Object.values(this.seeded));
    for (const g of this.cache.values()) {
      if (seen.has(g)) continue;
      seen.add(g);
      g.destroy();
    }
    this.cache.clear();
  }
}
