import type { DType, ProcessGroup, ProcessGroupOptions, ReduceOp, Tensor, Work } from '@omnitrain/core';
import { itemSize } from '@omnitrain/core';
import type { NativeBuffer, NativeGroup, NativeWork } from './native.js';
import { loadNative } from './native.js';

const DTYPE_CODE: Record<DType, number> = {
  float32: 0,
  bfloat16: 1,
  int32: 2,
  float64: 3,
  float16: 4,
  uint8: 5,
  bool: 5,
};
const REDUCIBLE: ReadonlySet<DType> = new Set<DType>(['float32', 'bfloat16', 'int32', 'float64']);
const OP_CODE: Record<ReduceOp, number> = { sum: 0, avg: 1, max: 2, min: 3 };

/** Extra knobs, read from the environment when not given. */
export interface GlooGroupExtras {
  /** Address this rank's Gloo device listens on (env `OMNITRAIN_GLOO_HOSTNAME`; default 127.0.0.1 when the store is on loopback, else the host name). */
  bindHost?: string;
  /** Network interface to listen on instead (env `GLOO_SOCKET_IFNAME`, as in PyTorch). */
  iface?: string;
  /** reduceScatter as allreduce + slice instead of the ring (env `OMNITRAIN_GLOO_RS=allreduce`); for measurements. */
  rsViaAllreduce?: boolean;
  /** Segment size of the reduceScatter ring in bytes (env `OMNITRAIN_GLOO_SEGMENT_BYTES`, default 1 MiB). */
  segmentBytes?: number;
  /**
   * How long `Work.wait()` polls before it blocks, in µs (env `OMNITRAIN_GLOO_SPIN_US`, default 2000):
   * waking a blocked thread can cost milliseconds on an idle virtual CPU, more than a small collective.
   */
  spinMicros?: number;
}

/** A Work whose buffers stay referenced (so they cannot be collected) until it completes. */
class GlooWork implements Work {
  /** The buffers kept referenced while in flight; null once done. */
  buffers: NativeBuffer[] | null;
  constructor(
    private readonly native: NativeWork,
    buffers: NativeBuffer[],
  ) {
    this.buffers = buffers;
  }
  wait(): void {
    try {
      this.native.wait();
    } finally {
      this.buffers = null;
    }
  }
  isCompleted(): boolean {
    const done = this.native.isCompleted();
    if (done) this.buffers = null;
    return done;
  }
}

function rows(t: Tensor): number {
  return t.ndim === 0 ? 1 : t.shape[0]!;
}
function rowElems(t: Tensor): number {
  return t.ndim === 0 ? 1 : t.shape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * A process group on Gloo over TCP (CPU tensors). Every operation is queued to the group's own
 * native worker thread and runs in issue order; `Work.wait()` blocks until it finished. Tensors are
 * exchanged in place through their own memory.
 */
export class GlooProcessGroup implements ProcessGroup {
  readonly backend = 'gloo';
  readonly name: string;
  readonly rank: number;
  readonly size: number;
  readonly ranks: readonly number[];
  /** Timeout of every operation, in ms. */
  readonly timeoutMs: number;
  private native: NativeGroup | null;
  private readonly inflight = new Set<GlooWork>();

  constructor(opts: ProcessGroupOptions, extras: GlooGroupExtras = {}) {
    const { rank, size, name } = opts;
    const ranks = opts.ranks?.length ? [...opts.ranks] : Array.from({ length: size }, (_, i) => i);
    if (!Number.isInteger(size) || size < 1) throw new Error(`gloo group '${name}': size must be >= 1, got ${size}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= size) {
      throw new Error(`gloo group '${name}': rank ${rank} is outside [0, ${size})`);
    }
    if (ranks.length !== size) {
      throw new Error(`gloo group '${name}': ranks has ${ranks.length} entries but size is ${size}`);
    }
    const { Group } = loadNative();
    const env = process.env;
    this.name = name;
    this.rank = rank;
    this.size = size;
    this.ranks = ranks;
    this.timeoutMs = opts.timeoutMs;
    this.native = new Group({
      host: opts.store.host,
      port: opts.store.port,
      secret: opts.store.secret,
      prefix: opts.prefix,
      name,
      rank,
      size,
      ranks,
      timeoutMs: opts.timeoutMs,
      bindHost: extras.bindHost ?? env.OMNITRAIN_GLOO_HOSTNAME ?? '',
      iface: extras.iface ?? env.GLOO_SOCKET_IFNAME ?? '',
      rsViaAllreduce: extras.rsViaAllreduce ?? env.OMNITRAIN_GLOO_RS === 'allreduce',
      segmentBytes: extras.segmentBytes ?? (Number(env.OMNITRAIN_GLOO_SEGMENT_BYTES) || 1 << 20),
      spinMicros:
        extras.spinMicros ?? (env.OMNITRAIN_GLOO_SPIN_US !== undefined ? Number(env.OMNITRAIN_GLOO_SPIN_US) : 2000),
    });
  }

  allReduce(t: Tensor, op: ReduceOp = 'sum'): Work {
    this.check('allReduce', t);
    this.checkReducible('allReduce', t, op);
    const buf = t.raw();
    return this.track(this.group().allReduce(buf, DTYPE_CODE[t.dtype], OP_CODE[op]), [buf]);
  }

  allGather(out: Tensor, input: Tensor, counts?: readonly number[]): Work {
    this.check('allGather', out, input);
    const even = counts === undefined;
    const c = counts ? this.checkCounts('allGather', counts) : this.fill(rows(input));
    const re = rowElems(input);
    const bytesPerRow = re * itemSize(input.dtype);
    if (rows(input) !== c[this.rank]) {
      throw new Error(
        `${this.where('allGather')}: input has ${rows(input)} rows but counts[${this.rank}] = ${c[this.rank]}`,
      );
    }
    const total = c.reduce((a, b) => a + b, 0);
    if (out.numel !== total * re) {
      throw new Error(
        `${this.where('allGather')}: out ${JSON.stringify(out.shape)} must hold ${total} rows of ${re} elements (counts ${JSON.stringify(c)})`,
      );
    }
    const ib = input.raw();
    const ob = out.raw();
    return this.track(
      this.group().allGather(
        ob,
        ib,
        c.map((n) => n * bytesPerRow),
        even,
      ),
      [ob, ib],
    );
  }

  reduceScatter(out: Tensor, input: Tensor, op: ReduceOp = 'sum', counts?: readonly number[]): Work {
    this.check('reduceScatter', out, input);
    this.checkReducible('reduceScatter', input, op);
    let c: number[];
    if (counts) c = this.checkCounts('reduceScatter', counts);
    else {
      if (rows(input) % this.size !== 0) {
        throw new Error(
          `${this.where('reduceScatter')}: input has ${rows(input)} rows, not divisible by the group size ${this.size}; pass counts`,
        );
      }
      c = this.fill(rows(input) / this.size);
    }
    const re = rowElems(input);
    const total = c.reduce((a, b) => a + b, 0);
    if (rows(input) !== total) {
      throw new Error(`${this.where('reduceScatter')}: input has ${rows(input)} rows but counts sum to ${total}`);
    }
    if (out.numel !== c[this.rank]! * re) {
      throw new Error(
        `${this.where('reduceScatter')}: out ${JSON.stringify(out.shape)} must hold ${c[this.rank]} rows of ${re} elements`,
      );
    }
    const ib = input.raw();
    const ob = out.raw();
    return this.track(
      this.group().reduceScatter(
        ob,
        ib,
        c.map((n) => n * re),
        DTYPE_CODE[input.dtype],
        OP_CODE[op],
      ),
      [ob, ib],
    );
  }

  allToAll(out: Tensor, input: Tensor, outSplits?: readonly number[], inSplits?: readonly number[]): Work {
    this.check('allToAll', out, input);
    const even = outSplits === undefined && inSplits === undefined;
    const split = (t: Tensor, what: string) => {
      if (rows(t) % this.size !== 0) {
        throw new Error(
          `${this.where('allToAll')}: ${what} has ${rows(t)} rows, not divisible by the group size ${this.size}; pass splits`,
        );
      }
      return this.fill(rows(t) / this.size);
    };
    const si = inSplits ? this.checkCounts('allToAll', inSplits) : split(input, 'input');
    const so = outSplits ? this.checkCounts('allToAll', outSplits) : split(out, 'out');
    const re = rowElems(input);
    if (rowElems(out) !== re && out.numel > 0 && input.numel > 0) {
      throw new Error(`${this.where('allToAll')}: out rows have ${rowElems(out)} elements, input rows ${re}`);
    }
    const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
    if (sum(si) !== rows(input)) {
      throw new Error(`${this.where('allToAll')}: inSplits sum to ${sum(si)} but input has ${rows(input)} rows`);
    }
    if (sum(so) * re !== out.numel) {
      throw new Error(
        `${this.where('allToAll')}: outSplits sum to ${sum(so)} rows but out ${JSON.stringify(out.shape)} has ${rows(out)}`,
      );
    }
    const bpr = re * itemSize(input.dtype);
    const ib = input.raw();
    const ob = out.raw();
    return this.track(
      this.group().allToAll(
        ob,
        ib,
        so.map((n) => n * bpr),
        si.map((n) => n * bpr),
        even,
      ),
      [ob, ib],
    );
  }

  broadcast(t: Tensor, root: number): Work {
    this.check('broadcast', t);
    this.checkPeer('broadcast', root, true);
    const buf = t.raw();
    return this.track(this.group().broadcast(buf, root), [buf]);
  }

  barrier(): Work {
    return this.track(this.group().barrier(), []);
  }

  send(t: Tensor, dst: number, tag = 0): Work {
    this.check('send', t);
    this.checkPeer('send', dst, false);
    const buf = t.raw();
    return this.track(this.group().send(buf, dst, this.checkTag(tag)), [buf]);
  }

  recv(t: Tensor, src: number, tag = 0): Work {
    this.check('recv', t);
    this.checkPeer('recv', src, false);
    const buf = t.raw();
    return this.track(this.group().recv(buf, src, this.checkTag(tag)), [buf]);
  }

  /** Waits for in-flight work (errors ignored), then closes the connections. Idempotent. */
  destroy(): void {
    if (!this.native) return;
    for (const w of this.inflight) {
      try {
        w.wait();
      } catch {}
    }
    this.inflight.clear();
    this.native.destroy();
    this.native = null;
  }

  private group(): NativeGroup {
    if (!this.native) throw new Error(`gloo group '${this.name}' (rank ${this.rank}) used after destroy()`);
    return this.native;
  }

  private track(native: NativeWork, buffers: NativeBuffer[]): Work {
    for (const w of this.inflight) if (w.isCompleted()) this.inflight.delete(w);
    const w = new GlooWork(native, buffers);
    this.inflight.add(w);
    return w;
  }

  private where(op: string): string {
    return `gloo group '${this.name}' (rank ${this.rank} of ${this.size}) ${op}`;
  }

  private check(op: string, ...ts: Tensor[]): void {
    for (const t of ts) {
      if (t.device !== 'cpu') throw new Error(`${this.where(op)}: tensor is on '${t.device}'; gloo needs cpu tensors`);
    }
    if (ts.length === 2 && ts[0]!.dtype !== ts[1]!.dtype) {
      throw new Error(`${this.where(op)}: out is ${ts[0]!.dtype} but input is ${ts[1]!.dtype}`);
    }
  }

  private checkReducible(op: string, t: Tensor, r: ReduceOp): void {
    if (!(r in OP_CODE)) throw new Error(`${this.where(op)}: unknown reduce op '${r}' (sum, avg, max, min)`);
    if (!REDUCIBLE.has(t.dtype)) {
      throw new Error(`${this.where(op)}: cannot reduce ${t.dtype} (float32, bfloat16, int32, float64)`);
    }
  }

  private checkCounts(op: string, counts: readonly number[]): number[] {
    if (counts.length !== this.size || counts.some((c) => !Number.isInteger(c) || c < 0)) {
      throw new Error(
        `${this.where(op)}: expected ${this.size} non-negative integer counts (one per rank), got ${JSON.stringify(counts)}`,
      );
    }
    return [...counts];
  }

  private checkPeer(op: string, peer: number, selfOk: boolean): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.size || (!selfOk && peer === this.rank)) {
      throw new Error(`${this.where(op)}: bad peer rank ${peer} (group ranks 0..${this.size - 1}, self ${this.rank})`);
    }
  }

  private checkTag(tag: number): number {
    if (!Number.isInteger(tag) || tag < 0 || tag > 0xffffffff) throw new Error(`gloo: tag must be a u32, got ${tag}`);
    return tag;
  }

  private fill(n: number): number[] {
    return Array.from({ length: this.size }, () => n);
  }
}
