import type { Tensor } from '../tensor.js';
import type { StoreAddress } from './store.js';

export type { StoreAddress } from './store.js';

/** Reduction applied by `allReduce` / `reduceScatter`. `avg` divides the sum by the group size. */
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';

/** Handle of an issued collective. wait() blocks the JS thread until done (or throws after the op's timeout). */
export interface Work {
  /** Block until the operation finished; throws (naming group, op and peers) on failure or timeout. */
  wait(): void;
  /** True once the operation finished (successfully or not); never blocks. */
  isCompleted(): boolean;
}

/** A set of ranks that exchange tensors through one collective backend. */
export interface ProcessGroup {
  /** `'gloo'` | `'nccl'`. */
  readonly backend: string;
  /** E.g. `'world'`, `'dp_shard'`; used in error messages and store prefixes. */
  readonly name: string;
  /** Rank within this group. */
  readonly rank: number;
  /** Number of members. */
  readonly size: number;
  /** Global ranks of the members, in group-rank order. */
  readonly ranks: readonly number[];
  /** In place. */
  allReduce(t: Tensor, op?: ReduceOp): Work;
  /** Dim-0 concat into `out`; `counts` = rows per rank (uneven). */
  allGather(out: Tensor, input: Tensor, counts?: readonly number[]): Work;
  /** Input rows split by `counts` (even if omitted). */
  reduceScatter(out: Tensor, input: Tensor, op?: ReduceOp, counts?: readonly number[]): Work;
  /** Splits in dim-0 rows. */
  allToAll(out: Tensor, input: Tensor, outSplits?: readonly number[], inSplits?: readonly number[]): Work;
  broadcast(t: Tensor, root: number): Work;
  barrier(): Work;
  send(t: Tensor, dst: number, tag?: number): Work;
  recv(t: Tensor, src: number, tag?: number): Work;
  destroy(): void;
}

/** What a backend needs to create one group. */
export interface ProcessGroupOptions {
  /** Where the TCP store is. */
  store: StoreAddress;
  /** Store key prefix for this group (distinct per group). */
  prefix: string;
  rank: number;
  size: number;
  ranks: readonly number[];
  name: string;
  /** Every op and the rendezvous. */
  timeoutMs: number;
}

/** A collective library, registered with `registry.processGroups.register(name, backend)`. */
export interface ProcessGroupBackend {
  readonly name: string;
  create(opts: ProcessGroupOptions): ProcessGroup;
}
