// One FSDP unit (FSDP2's FSDPParamGroup): the parameters a fullyShard call manages, their
// sharded storage, the flat all-gather that unshards them and the flat reduce-scatter that
// turns their full gradients into sharded ones.

import {
  cast,
  type DType,
  dispatch1,
  isGradEnabled,
  itemSize,
  keep,
  nn,
  noGrad,
  type ProcessGroup,
  Tensor,
  type Work,
} from '@omnitrain/core';
import { copyElems, layoutOf, type ParamLayout, validRows } from './shard-layout.js';

/** The N of `cuda:N` (0 for other devices). */
const deviceIndex = (device: string) => (device.startsWith('cuda:') ? Number(device.slice(5)) : 0);

/** One event of the FSDP timeline (see {@link FSDPOptions.trace}). */
export interface FSDPEvent {
  /** `performance.now()` when it happened. */
  t: number;
  /** The unit's module name (`''` for the root). */
  unit: string;
  kind:
    | 'allgather-issue'
    | 'allgather-wait'
    | 'forward-start'
    | 'forward-end'
    | 'backward-start'
    | 'reduce-scatter-issue'
    | 'reduce-scatter-wait';
  /** True when issued as a prefetch (ahead of the unit's own hook). */
  prefetch?: boolean;
}

interface InFlight {
  work: Work;
  send: Tensor;
  recv: Tensor;
}

interface PendingReduce {
  work: Work;
  send: Tensor;
  recv: Tensor;
}

/** @internal The state of one fullyShard'ed module. */
export class FSDPUnit {
  readonly layouts: ParamLayout[];
  readonly shardNumel: number;
  /** Sharded master data, one per parameter: [chunk, ...rest], padding rows zero. */
  readonly shards: Tensor[];
  /** Sharded gradients accumulated so far (micro-batches), one per parameter. */
  readonly shardGrads: (Tensor | null)[];
  state: 'sharded' | 'unsharded' = 'sharded';
  /** True once this unit's parameters were unsharded for backward and the reduce-scatter has not run. */
  needsReduce = false;
  private inflight: InFlight | null = null;
  /**
   * The full tensors of the last unshard while autograd may still hold them (grad enabled):
   * re-unsharding for backward all-gathers into the same storage instead of allocating a second
   * copy. With reshard after forward their bytes are released in between (FSDP2's
   * `untyped_storage().resize_(0)`): autograd's saved references keep the Storage objects, which
   * {@link unshard} re-allocates and fills before the unit's backward. Dropped once the unit's
   * gradients are reduced.
   */
  private fullCache: Tensor[] | null = null;
  private pending: PendingReduce | null = null;
  /** Forward order index inside the root's timeline. */
  trace: ((e: Omit<FSDPEvent, 't'>) => void) | null = null;

  constructor(
    readonly module: nn.Module,
    public name: string,
    readonly params: nn.Parameter[],
    paramNames: string[],
    readonly shardGroup: ProcessGroup,
    readonly replicateGroup: ProcessGroup | null,
    readonly paramDtype: DType | null,
    readonly reduceDtype: DType | null,
    readonly reshardAfterForward: boolean,
    /** True until a parent's fullyShard adopts this unit. */
    public isRoot: boolean,
    materializeDevice: string,
  ) {
    const n = shardGroup.size;
    const r = shardGroup.rank;
    const { layouts, shardNumel } = layoutOf(
      params.map((p, i) => ({ name: paramNames[i]!, shape: p.shape })),
      n,
    );
    this.layouts = layouts;
    this.shardNumel = shardNumel;
    this.shards = [];
    this.shardGrads = params.map(() => null);
    noGrad(() => {
      params.forEach((p, i) => {
        const l = layouts[i]!;
        const meta = p.device === 'meta';
        const device = meta ? materializeDevice : p.device;
        const shard = keep(Tensor.empty([l.chunk, ...l.fullShape.slice(1)], p.dtype, device));
        const rows = validRows(l, r);
        if (rows > 0) {
          if (meta) {
            const view = shard.slice0(0, rows);
            const ok = nn.init.replayInit(p, view, r * l.chunk * l.inner);
            view.dispose();
            if (!ok) {
              throw new Error(
                `fullyShard: parameter '${l.name}' is on 'meta' and has no recorded initialisation (nn.init) to replay; ` +
                  'load a state dict instead (loadFullStateDict)',
              );
            }
          } else copyElems(shard, 0, p, r * l.chunk * l.inner, rows * l.inner);
        }
        if (p.grad) {
          p.grad.dispose();
          p.grad = null;
        }
        p.adoptStorageOf(shard, `fullyShard('${name}')`);
        this.shards.push(shard);
      });
    });
  }

  private emit(kind: FSDPEvent['kind'], prefetch?: boolean): void {
    this.trace?.({ unit: this.name, kind, ...(prefetch ? { prefetch } : {}) });
  }

  /** The dtype parameters are all-gathered and computed in. */
  computeDtype(i: number): DType {
    return this.paramDtype ?? this.shards[i]!.dtype;
  }

  /** Issue the unit's one flat all-gather (no-op when unsharded or already in flight). */
  issueAllGather(prefetch = false): void {
    if (this.state === 'unsharded' || this.inflight) return;
    if (!this.params.length) {
      this.state = 'unsharded';
      return;
    }
    const n = this.shardGroup.size;
    const dtype = this.computeDtype(0);
    for (let i = 1; i < this.params.length; i++) {
      if (this.computeDtype(i) !== dtype) {
        throw new Error(
          `fullyShard('${this.name}'): parameters of one unit must share a dtype (${this.layouts[i]!.name} is ${this.computeDtype(i)}, ` +
            `first is ${dtype}); set mixedPrecision.paramDtype`,
        );
      }
    }
    noGrad(() => {
      const send = keep(Tensor.empty([this.shardNumel], dtype, this.shards[0]?.device ?? 'cpu'));
      const recv = keep(Tensor.empty([n * this.shardNumel], dtype, send.device));
      this.shards.forEach((s, i) => {
        const src = s.dtype === dtype ? s : cast(s, dtype);
        copyElems(send, this.layouts[i]!.offset, src, 0, s.numel);
        if (src !== s) src.dispose();
      });
      this.emit('allgather-issue', prefetch);
      const work = this.shardGroup.allGather(recv, send);
      this.inflight = { work, send, recv };
    });
  }

  /** Make the parameters full: wait for (or issue and wait for) the all-gather, copy out, swap storage. */
  unshard(): void {
    if (this.state === 'unsharded') return;
    if (!this.inflight) this.issueAllGather(false);
    if (!this.params.length) return; // nothing to gather
    const { work, send, recv } = this.inflight!;
    this.inflight = null;
    work.wait();
    this.emit('allgather-wait');
    send.dispose();
    const n = this.shardGroup.size;
    const fulls: Tensor[] = [];
    noGrad(() => {
      this.params.forEach((p, i) => {
        const l = this.layouts[i]!;
        const cached = this.fullCache?.[i];
        const reuse = cached && !cached.isDisposed && cached.dtype === recv.dtype;
        // Bytes released after forward come back here, in the Storage autograd saved.
        if (reuse) cached.storage.ensureAllocated(deviceIndex(recv.device));
        const full = reuse ? cached : Tensor.empty(l.fullShape, recv.dtype, recv.device);
        for (let r = 0; r < n; r++) {
          const rows = validRows(l, r);
          copyElems(full, r * l.chunk * l.inner, recv, r * this.shardNumel + l.offset, rows * l.inner);
        }
        // A sharded gradient from earlier micro-batches waits in shardGrads while the full one accumulates.
        if (p.grad) {
          const old = this.liveGrad(i);
          if (old && old !== p.grad) old.dispose();
          this.shardGrads[i] = p.grad;
          p.grad = null;
        }
        p.adoptStorageOf(full, `unshard('${this.name}')`);
        fulls.push(full);
      });
    });
    recv.dispose();
    this.dropCache(fulls);
    if (isGradEnabled()) this.fullCache = fulls.map((t) => keep(t));
    else for (const t of fulls) t.dispose();
    this.state = 'unsharded';
  }

  /** Dispose the cached full tensors (except those in `except`). */
  private dropCache(except: Tensor[] = []): void {
    for (const t of this.fullCache ?? []) if (!except.includes(t)) t.dispose();
    this.fullCache = null;
  }

  /**
   * Point the parameters back at their shards. The full storage is freed once autograd lets go
   * of it, or at once with `releaseFull` (after forward): its bytes are released while autograd
   * keeps the Storage, and the pre-backward {@link unshard} all-gathers into it again.
   */
  reshard(releaseFull = false): void {
    if (this.state === 'sharded') return;
    this.params.forEach((p, i) => {
      p.adoptStorageOf(this.shards[i]!, `reshard('${this.name}')`);
      const g = this.liveGrad(i);
      if (!p.grad && g) p.grad = g;
    });
    this.state = 'sharded';
    if (!releaseFull) return;
    this.fullCache?.forEach((t, i) => {
      if (t.isDisposed) return;
      t.storage.releaseBytes(
        `FSDP reshards after forward: unit '${this.name}', parameter '${this.layouts[i]!.name}'; ` +
          "was the unit's pre-backward all-gather skipped?",
      );
    });
  }

  /** Bytes of the unit's full (unsharded) parameters in the compute dtype: what reshard after forward frees. */
  fullBytes(): number {
    return this.layouts.reduce(
      (a, l, i) => a + l.fullShape.reduce((x, y) => x * y, 1) * itemSize(this.computeDtype(i)),
      0,
    );
  }

  /**
   * The unit's backward is done: pack the full gradients (in the reduce dtype) into one flat
   * buffer, issue the reduce-scatter (average over the shard group), reshard. The result is
   * consumed by {@link waitReduce}.
   */
  issueReduce(): void {
    if (!this.needsReduce) return;
    this.needsReduce = false;
    if (!this.params.length) {
      this.reshard();
      return;
    }
    const n = this.shardGroup.size;
    const rdt: DType = this.reduceDtype ?? this.shards[0]!.dtype;
    noGrad(() => {
      const send = keep(Tensor.empty([n * this.shardNumel], rdt, this.shards[0]?.device ?? 'cpu'));
      const recv = keep(Tensor.empty([this.shardNumel], rdt, send.device));
      this.params.forEach((p, i) => {
        const g = p.grad;
        if (!g) return;
        const l = this.layouts[i]!;
        const src = g.dtype === rdt ? g : cast(g, rdt);
        for (let r = 0; r < n; r++) {
          copyElems(send, r * this.shardNumel + l.offset, src, r * l.chunk * l.inner, validRows(l, r) * l.inner);
        }
        if (src !== g) src.dispose();
        g.dispose();
        p.grad = null;
      });
      this.emit('reduce-scatter-issue');
      const work = this.shardGroup.reduceScatter(recv, send, 'avg');
      this.pending = { work, send, recv };
    });
    this.reshard();
    this.dropCache();
  }

  /** Wait for the reduce-scatter, all-reduce across replicas (HSDP), accumulate into the sharded grads. */
  waitReduce(): void {
    if (!this.pending) return;
    const { work, send, recv } = this.pending;
    this.pending = null;
    work.wait();
    send.dispose();
    if (this.replicateGroup && this.replicateGroup.size > 1) this.replicateGroup.allReduce(recv, 'avg').wait();
    this.emit('reduce-scatter-wait');
    noGrad(() => {
      this.params.forEach((p, i) => {
        const l = this.layouts[i]!;
        const shard = this.shards[i]!;
        const part = Tensor.empty(shard.shape, recv.dtype, recv.device);
        copyElems(part, 0, recv, l.offset, l.chunk * l.inner);
        const g = part.dtype === shard.dtype ? part : cast(part, shard.dtype);
        if (g !== part) part.dispose();
        const old = p.grad && !p.grad.isDisposed && this.state === 'sharded' ? p.grad : this.liveGrad(i);
        if (old) {
          dispatch1('add_', [old, g]);
          g.dispose();
        } else this.shardGrads[i] = keep(g);
        if (old) this.shardGrads[i] = old;
        if (p.grad && p.grad !== this.shardGrads[i] && this.state === 'sharded') p.grad.dispose();
        if (this.state === 'sharded') p.grad = this.shardGrads[i]!;
      });
    });
    recv.dispose();
  }

  /** The accumulated sharded gradient of parameter i, or null (also when the user disposed it: zeroGrad). */
  liveGrad(i: number): Tensor | null {
    const g = this.shardGrads[i];
    if (g?.isDisposed) this.shardGrads[i] = null;
    return this.shardGrads[i] ?? null;
  }

  /**
   * Collective: the full values of every parameter of the unit, gathered from the shards in
   * their own dtype with one flat all-gather. New kept tensors, the caller's to dispose.
   */
  gatherFull(): Tensor[] {
    const n = this.shardGroup.size;
    if (!this.shards.length) return [];
    const dtype = this.shards[0]!.dtype;
    for (const s of this.shards) {
      if (s.dtype !== dtype) throw new Error(`fullStateDict('${this.name}'): shards of one unit must share a dtype`);
    }
    return noGrad(() => {
      const send = Tensor.empty([this.shardNumel], dtype, this.shards[0]!.device);
      const recv = Tensor.empty([n * this.shardNumel], dtype, send.device);
      this.shards.forEach((s, i) => {
        copyElems(send, this.layouts[i]!.offset, s, 0, s.numel);
      });
      this.shardGroup.allGather(recv, send).wait();
      const out = this.layouts.map((l) => {
        const full = keep(Tensor.empty(l.fullShape, dtype, recv.device));
        for (let r = 0; r < n; r++) {
          copyElems(full, r * l.chunk * l.inner, recv, r * this.shardNumel + l.offset, validRows(l, r) * l.inner);
        }
        return full;
      });
      send.dispose();
      recv.dispose();
      return out;
    });
  }

  /** Write this rank's rows of the full value `full` of parameter i into its shard. */
  loadFull(i: number, full: Tensor): void {
    const l = this.layouts[i]!;
    const shard = this.shards[i]!;
    const r = this.shardGroup.rank;
    noGrad(() => {
      const src = full.dtype === shard.dtype ? full : cast(full, shard.dtype);
      const rows = validRows(l, r);
      copyElems(shard, 0, src, r * l.chunk * l.inner, rows * l.inner);
      if (src !== full) src.dispose();
    });
  }
}
