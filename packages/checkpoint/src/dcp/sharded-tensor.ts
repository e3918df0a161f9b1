import { itemSize, type Tensor } from '@omnitrain/core';

/**
 * The part of a global tensor that this rank holds: `local` is the block starting at `offsets`
 * (one per dim) of a tensor of shape `globalShape`; its extent is `local.shape`.
 */
export interface ShardedTensor {
  readonly kind: 'dcp-sharded';
  /** This rank's block (contiguous, row-major). */
  readonly local: Tensor;
  /** Shape of the whole tensor. */
  readonly globalShape: readonly number[];
  /** Where `local` starts in the whole tensor, per dim. */
  readonly offsets: readonly number[];
}

/** Describe `local` as the block at `offsets` of a `globalShape` tensor (checked). */
export function shardedTensor(
  local: Tensor,
  globalShape: readonly number[],
  offsets: readonly number[],
): ShardedTensor {
  if (globalShape.length !== local.shape.length || offsets.length !== local.shape.length) {
    throw new Error(
      `shardedTensor: local [${local.shape}], global [${globalShape}] and offsets [${offsets}] need the same number of dims`,
    );
  }
  local.shape.forEach((n, d) => {
    const o = offsets[d]!;
    if (!(Number.isInteger(o) && o >= 0 && o + n <= globalShape[d]!)) {
      throw new Error(
        `shardedTensor: block [${offsets}] + [${local.shape}] does not fit in [${globalShape}] (dim ${d})`,
      );
    }
  });
  return { kind: 'dcp-sharded', local, globalShape: [...globalShape], offsets: [...offsets] };
}

/** Rows `[rowStart, rowStart + local.shape[0])` of a tensor with `globalRows` rows (FSDP-style dim-0 sharding). */
export function dim0Shard(local: Tensor, globalRows: number, rowStart: number): ShardedTensor {
  return shardedTensor(local, [globalRows, ...local.shape.slice(1)], [rowStart, ...local.shape.slice(1).map(() => 0)]);
}

/** True for values made by {@link shardedTensor}. */
export function isShardedTensor(v: unknown): v is ShardedTensor {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'dcp-sharded';
}

/** True for core tensors. */
export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && (v as { isTensor?: unknown }).isTensor === true;
}

/** The bytes of a (contiguous) tensor: a view on CPU, a copy read from other devices. */
export function tensorBytes(t: Tensor, where: string): Uint8Array {
  if (t.isDisposed) throw new Error(`${where}: tensor is disposed`);
  if (t.device === 'meta') throw new Error(`${where}: tensor is on 'meta' and has no data`);
  const size = itemSize(t.dtype);
  if (t.device === 'cpu') return new Uint8Array(t.storage.handle as ArrayBuffer, t.offset * size, t.numel * size);
  t.storage.backend.synchronize();
  return t.storage.backend.readBytes(t.storage, t.offset * size, t.numel * size);
}

/** Overwrite the bytes of tensor `t` with `data` (same length). */
export function writeTensorBytes(t: Tensor, data: Uint8Array): void {
  const size = itemSize(t.dtype);
  if (t.device === 'cpu') new Uint8Array(t.storage.handle as ArrayBuffer, t.offset * size, t.numel * size).set(data);
  else t.storage.backend.writeBytes(t.storage, t.offset * size, data);
}

/** A region of a global tensor: per-dim offsets and lengths. */
export interface Region {
  offsets: readonly number[];
  lengths: readonly number[];
}

const volume = (l: readonly number[]) => l.reduce((a, b) => a * b, 1);

/** The intersection of two regions, or null when empty. */
export function intersect(a: Region, b: Region): Region | null {
  const offsets: number[] = [];
  const lengths: number[] = [];
  for (let d = 0; d < a.offsets.length; d++) {
    const lo = Math.max(a.offsets[d]!, b.offsets[d]!);
    const hi = Math.min(a.offsets[d]! + a.lengths[d]!, b.offsets[d]! + b.lengths[d]!);
    if (hi <= lo) return null;
    offsets.push(lo);
    lengths.push(hi - lo);
  }
  return { offsets, lengths };
}

/** Number of elements of a region. */
export function regionNumel(r: Region): number {
  return volume(r.lengths);
}

/**
 * The element span (first, end) of region `part` inside the row-major block `block`:
 * the smallest contiguous byte range of `block` to read to get all of `part`.
 */
export function elementSpan(block: Region, part: Region): [number, number] {
  const nd = block.lengths.length;
  let first = 0;
  let last = 0;
  let stride = 1;
  for (let d = nd - 1; d >= 0; d--) {
    const rel = part.offsets[d]! - block.offsets[d]!;
    first += rel * stride;
    last += (rel + part.lengths[d]! - 1) * stride;
    stride *= block.lengths[d]!;
  }
  return [first, last + 1];
}

/**
 * Copy region `part` from `src` (bytes of row-major block `srcBlock`, starting at element
 * `srcBase` of it) into `dst` (bytes of block `dstBlock`). Contiguous runs are copied at once.
 */
export function copyRegion(
  src: Uint8Array,
  srcBlock: Region,
  srcBase: number,
  dst: Uint8Array,
  dstBlock: Region,
  part: Region,
  size: number,
): void {
  const nd = part.lengths.length;
  if (nd === 0) {
    dst.set(src.subarray(-srcBase * size, (1 - srcBase) * size), 0);
    return;
  }
  // Merge trailing dims that are whole in both blocks into one contiguous run.
  let inner = nd - 1;
  let run = part.lengths[nd - 1]!;
  while (
    inner > 0 &&
    part.lengths[inner]! === srcBlock.lengths[inner]! &&
    part.lengths[inner]! === dstBlock.lengths[inner]!
  ) {
    inner--;
    run *= part.lengths[inner]!;
  }
  const strides = (b: Region) => {
    const s = new Array<number>(nd).fill(1);
    for (let d = nd - 2; d >= 0; d--) s[d] = s[d + 1]! * b.lengths[d + 1]!;
    return s;
  };
  const ss = strides(srcBlock);
  const ds = strides(dstBlock);
  const idx = new Array<number>(inner).fill(0);
  const bytes = run * size;
  for (;;) {
    let so = 0;
    let doff = 0;
    for (let d = 0; d < nd; d++) {
      const g = part.offsets[d]! + (d < inner ? idx[d]! : 0);
      so += (g - srcBlock.offsets[d]!) * ss[d]!;
      doff += (g - dstBlock.offsets[d]!) * ds[d]!;
    }
    const from = (so - srcBase) * size;
    dst.set(src.subarray(from, from + bytes), doff * size);
    let d = inner - 1;
    while (d >= 0) {
      if (++idx[d]! < part.lengths[d]!) break;
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
}
