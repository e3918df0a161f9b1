import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { itemSize, type Tensor } from '@omnitrain/core';
import { isSafetensorsDType, type SafetensorsDType, safetensorsDTypeOf, safetensorsItemSize } from './dtypes.js';
import { INDEX_FILE, SINGLE_FILE } from './sharded-reader.js';

/** Raw bytes of a tensor in a safetensors dtype core has no tensors for (e.g. `I64`). */
export interface RawTensor {
  /** Stored dtype. */
  dtype: SafetensorsDType;
  /** Dimensions. */
  shape: readonly number[];
  /** `numel * itemSize` bytes, little-endian. */
  data: Uint8Array;
}

/** What the writers accept: core tensors (any device but `meta`) or raw bytes. */
export type WritableTensor = Tensor | RawTensor;

/** Tensors to write, by name: a record or a map (its order decides which shard a tensor lands in). */
export type TensorDict = Record<string, WritableTensor> | Map<string, WritableTensor>;

interface Planned {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  bytes: number;
  source: WritableTensor;
}

const isTensor = (t: WritableTensor): t is Tensor => (t as { isTensor?: boolean }).isTensor === true;

function plan(name: string, t: WritableTensor, where: string): Planned {
  if (name === '__metadata__') throw new Error(`${where}: '__metadata__' cannot be a tensor name`);
  if (isTensor(t)) {
    if (t.isDisposed) throw new Error(`${where}: tensor '${name}' is disposed`);
    if (t.device === 'meta') throw new Error(`${where}: tensor '${name}' is on 'meta' and has no data to save`);
    return { name, dtype: safetensorsDTypeOf(t.dtype), shape: t.shape, bytes: t.byteLength, source: t };
  }
  if (!isSafetensorsDType(t.dtype)) throw new Error(`${where}: tensor '${name}': unknown dtype '${t.dtype}'`);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where}: tensor '${name}': bad shape ${JSON.stringify(t.shape)}`);
  }
  const bytes = numel * safetensorsItemSize(t.dtype);
  if (t.data.byteLength !== bytes) {
    throw new Error(
      `${where}: tensor '${name}': ${t.data.byteLength} bytes for shape ${JSON.stringify(t.shape)} ${t.dtype} (needs ${bytes})`,
    );
  }
  return { name, dtype: t.dtype, shape: t.shape, bytes, source: t };
}

function bytesOf(p: Planned): Uint8Array {
  const s = p.source;
  if (!isTensor(s)) return s.data;
  const size = itemSize(s.dtype);
  if (s.device === 'cpu') return new Uint8Array(s.storage.handle as ArrayBuffer, s.offset * size, s.numel * size);
  s.storage.backend.synchronize();
  return s.storage.backend.readBytes(s.storage, s.offset * size, s.numel * size);
}

function entriesOf(tensors: TensorDict): [string, WritableTensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/** @internal Check `__metadata__` (string to string). */
export function checkMetadata(metadata: Record<string, string> | undefined, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') throw new Error(`${where}: metadata '${k}' must be a string, got ${typeof v}`);
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

let tmpCounter = 0;

/** A temporary name next to `path` (same directory, so rename is atomic). */
function tmpName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${++tmpCounter}`);
}

/** Write `chunks` to a temporary file, fsync it, then rename it to `path`. */
/** @internal */
export function writeAtomically(path: string, chunks: Iterable<Uint8Array>): number {
  const tmp = tmpName(path);
  const fd = openSync(tmp, 'w');
  let total = 0;
  try {
    for (const c of chunks) {
      let done = 0;
      while (done < c.length) done += writeSync(fd, c, done, Math.min(c.length - done, 1 << 30));
      total += c.length;
    }
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {}
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // fsync of a directory is best effort (not supported everywhere).
  }
  return total;
}

/** @internal What the header layout needs of a tensor. */
export interface LayoutItem {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  bytes: number;
}

/**
 * @internal The header bytes (length prefix + JSON padded with spaces to a multiple of 8) and the
 * data order of one file; `order[i]`'s data starts at byte `offsets[i]` of the data section.
 */
export function layout<T extends LayoutItem>(
  items: T[],
  metadata: Record<string, string>,
): { head: Uint8Array; order: T[]; offsets: number[] } {
  // As the reference writer does: larger alignment first, then by name, so every tensor's data
  // starts aligned to its element size.
  const order = [...items].sort(
    (a, b) =>
      safetensorsItemSize(b.dtype) - safetensorsItemSize(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const parts: string[] = [];
  if (Object.keys(metadata).length) {
    const m = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`"__metadata__":{${m.join(',')}}`);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const p of order) {
    offsets.push(offset);
    parts.push(
      `${JSON.stringify(p.name)}:{"dtype":"${p.dtype}","shape":[${p.shape.join(',')}],"data_offsets":[${offset},${offset + p.bytes}]}`,
    );
    offset += p.bytes;
  }
  let json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.length + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  head.set(json, 8);
  return { head, order, offsets };
}

/** What a write produced. */
export interface WriteResult {
  /** Files written (absolute or as given). */
  files: string[];
  /** Bytes of tensor data written (the index's `total_size`). */
  totalSize: number;
}

/**
 * Write one safetensors file: 8-byte little-endian header length, the JSON header padded with
 * spaces to a multiple of 8 bytes (as Hugging Face's writer does), then the data, larger dtypes
 * first and by name within a dtype size. The file is written under a temporary name, fsynced and
 * renamed, so a crash never leaves a half-written file under `path`. `metadata` becomes
 * `__metadata__` (string to string). Tensors are only read; the caller keeps them.
 */
export function writeSafetensors(path: string, tensors: TensorDict, metadata?: Record<string, string>): WriteResult {
  const where = `safetensors ${path}`;
  const meta = checkMetadata(metadata, where);
  const items = entriesOf(tensors).map(([name, t]) => plan(name, t, where));
  const { head, order } = layout(items, meta);
  mkdirSync(dirname(path), { recursive: true });
  function* chunks(): Generator<Uint8Array> {
    yield head;
    for (const p of order) yield bytesOf(p);
  }
  writeAtomically(path, chunks());
  return { files: [path], totalSize: items.reduce((a, p) => a + p.bytes, 0) };
}

/** Options of {@link writeSafetensorsDir}. */
export interface WriteDirOptions {
  /**
   * Most bytes of tensor data per shard (a number, or a string like `'5GB'`, `'500MB'`, `'10KiB'`).
   * Default `'5GB'`, Hugging Face's default. A tensor larger than the limit gets a shard of its own.
   */
  maxShardBytes?: number | string;
  /** `__metadata__` of every file; default `{ format: 'pt' }` (transformers checks `format`). */
  metadata?: Record<string, string>;
}

/** Parse a size like Hugging Face's `max_shard_size`: `5GB` = 5e9, `5GiB` = 5 * 2^30. */
export function parseSize(size: number | string): number {
  if (typeof size === 'number') {
    if (!(Number.isSafeInteger(size) && size > 0))
      throw new Error(`maxShardBytes must be a positive integer, got ${size}`);
    return size;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(size);
  if (!m) throw new Error(`maxShardBytes: cannot parse '${size}' (e.g. 5GB, 500MB, 10KiB)`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const pow = { B: 0, K: 1, M: 2, G: 3, T: 4 }[unit[0] as 'B'] ?? 0;
  const base = unit.includes('I') ? 1024 : 1000;
  return parseSize(Math.floor(Number(m[1]) * base ** pow));
}

/** @internal Names of the files of a sharded Hugging Face checkpoint. */
export const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** @internal `model-0000i-of-0000n.safetensors` (i from 0). */
export function shardFileName(i: number, n: number): string {
  return `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/**
 * @internal Group `items` into files in the order given: a new file whenever the next tensor
 * would exceed `limit` bytes (a tensor larger than the limit gets a file of its own). Always at
 * least one (possibly empty) group.
 */
export function packShards<T extends { bytes: number }>(items: readonly T[], limit: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let currentBytes = 0;
  for (const p of items) {
    if (current.length && currentBytes + p.bytes > limit) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(p);
    currentBytes += p.bytes;
  }
  if (current.length || !shards.length) shards.push(current);
  return shards;
}

/** @internal The text of `model.safetensors.index.json` (as Hugging Face writes it: sorted, 2-space indent). */
export function indexText(weightMap: [string, string][], totalSize: number): string {
  const sorted = [...weightMap].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const body = sorted.map(([t, f]) => `    ${JSON.stringify(t)}: ${JSON.stringify(f)}`).join(',\n');
  return `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": {\n${body}\n  }\n}\n`;
}

/**
 * Write a Hugging Face checkpoint directory. When all tensors fit in one shard that is
 * `model.safetensors`; otherwise `model-00001-of-0000N.safetensors`... plus
 * `model.safetensors.index.json` (`{"metadata": {"total_size": N}, "weight_map": {name: file}}`),
 * filling shards in the order given, a new shard whenever the next tensor would exceed the
 * limit. Each file is written atomically, the index last; files of an earlier save that the new
 * layout does not use (`model.safetensors`, the index, other `model-*-of-*.safetensors`) are then
 * removed, so the directory never mixes two saves.
 */
export function writeSafetensorsDir(dir: string, tensors: TensorDict, opts: WriteDirOptions = {}): WriteResult {
  const where = `safetensors ${dir}`;
  const limit = parseSize(opts.maxShardBytes ?? '5GB');
  const meta = checkMetadata(opts.metadata ?? { format: 'pt' }, where);
  const all = entriesOf(tensors);
  const items = all.map(([name, t]) => plan(name, t, where));
  const shards = packShards(items, limit).map((group) =>
    group.map((p) => [p.name, p.source] as [string, WritableTensor]),
  );
  mkdirSync(dir, { recursive: true });
  const totalSize = items.reduce((a, p) => a + p.bytes, 0);
  const files: string[] = [];
  const keep = new Set<string>();
  if (shards.length === 1) {
    writeSafetensors(join(dir, SINGLE_FILE), new Map(shards[0]), meta);
    files.push(join(dir, SINGLE_FILE));
    keep.add(SINGLE_FILE);
  } else {
    const n = shards.length;
    const weightMap: [string, string][] = [];
    shards.forEach((shard, i) => {
      const name = shardFileName(i, n);
      writeSafetensors(join(dir, name), new Map(shard), meta);
      files.push(join(dir, name));
      keep.add(name);
      for (const [t] of shard) weightMap.push([t, name]);
    });
    const text = indexText(weightMap, totalSize);
    writeAtomically(join(dir, INDEX_FILE), [new TextEncoder().encode(text)]);
    files.push(join(dir, INDEX_FILE));
    keep.add(INDEX_FILE);
  }
  for (const f of readdirSync(dir)) {
    if (keep.has(f)) continue;
    if (f === SINGLE_FILE || f === INDEX_FILE || SHARD_RE.test(f)) unlinkSync(join(dir, f));
  }
  return { files, totalSize };
}
