import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type DType, empty, isInitialized, type Tensor, worldGroup } from '@omnitrain/core';
import { nodeFileOpener, type RandomAccessFile } from '../file-io.js';
import { checksumFunction } from './crc32c.js';
import type { ChunkRecord, DcpMetadata, TensorRecord } from './job.js';
import {
  copyRegion,
  elementSpan,
  intersect,
  isTensor,
  type Region,
  regionNumel,
  type ShardedTensor,
  shardedTensor,
  tensorBytes,
  writeTensorBytes,
} from './sharded-tensor.js';
import { flattenState, resolveState, type StateTree, type TensorLeaf, tensorRefs } from './state-tree.js';

/** The metadata file of a committed checkpoint folder. */
export const METADATA_FILE = 'metadata.json';

/** A committed checkpoint found under a root. */
export interface CheckpointRef {
  step: number;
  dir: string;
}

/**
 * The newest complete checkpoint under `root` (a `step-N` folder holding `metadata.json`; the
 * `latest` pointer is only a hint, folders are the truth), or null when there is none.
 */
export function findLatestCheckpoint(root: string): CheckpointRef | null {
  if (!existsSync(root)) return null;
  const steps = readdirSync(root)
    .map((e) => /^step-(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const step of steps) {
    const dir = join(root, `step-${step}`);
    if (existsSync(join(dir, METADATA_FILE))) return { step, dir };
  }
  return null;
}

/** Read and check `metadata.json` of a checkpoint folder. */
export function readMetadata(dir: string): DcpMetadata {
  const file = join(dir, METADATA_FILE);
  if (!existsSync(file))
    throw new Error(`dcp checkpoint ${dir}: missing file ${METADATA_FILE} (not a complete checkpoint)`);
  let meta: DcpMetadata;
  try {
    meta = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`dcp checkpoint ${file}: corrupt metadata (${(e as Error).message})`);
  }
  if (
    meta?.format !== 'omnitrain-dcp' ||
    meta.version !== 1 ||
    typeof meta.tensors !== 'object' ||
    !['crc32', 'crc32c'].includes(meta.checksum)
  ) {
    throw new Error(`dcp checkpoint ${file}: not an omnitrain-dcp version 1 metadata file`);
  }
  return meta;
}

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Whose non-tensor state to return (default: this rank, i.e. the world rank or 0). */
  stateOf?: number;
  /**
   * Destination for a tensor the checkpoint's state references but `targets` lacks (e.g. optimizer
   * state in a fresh process). Default: a new full tensor on CPU.
   */
  materialize?: (name: string, info: { dtype: DType; shape: readonly number[] }) => TensorLeaf;
  /** Tensors of the checkpoint that `targets` lacks are an error (default false: they are materialized if referenced). */
  strict?: boolean;
  /**
   * Read straight into the (CPU) targets instead of into staging buffers first (default false).
   * Faster (no staging allocation, no second copy), but a corrupt or missing block found midway
   * leaves the targets partly overwritten (the error says so); the default changes nothing on error.
   */
  inPlace?: boolean;
}

/** What {@link loadCheckpoint} returns. */
export interface LoadResult {
  step: number;
  dir: string;
  /** The saved state tree of rank `stateOf`, tensor leaves being the (filled) targets or materialized tensors. */
  state: StateTree;
  /** Bytes read from data files. */
  bytesRead: number;
}

interface Want {
  name: string;
  leaf: TensorLeaf;
  local: Tensor;
  region: Region;
  rec: TensorRecord;
  staging: Uint8Array;
}

/**
 * Load checkpoint folder `dir` into `targets` (a state tree shaped like the saved one, whose
 * tensor leaves give this rank's layout: full tensors or {@link shardedTensor} blocks — any
 * world size or sharding). Each target reads only the checksum blocks of the chunks it overlaps;
 * every block read is verified. Everything is read and checked before any target is written:
 * on error nothing was changed (unless `opts.inPlace`).
 */
export function loadCheckpoint(dir: string, targets: StateTree, opts: LoadCheckpointOptions = {}): LoadResult {
  const meta = readMetadata(dir);
  const where = `dcp checkpoint ${dir}`;
  const rank = opts.stateOf ?? (isInitialized() ? worldGroup().rank : 0);
  if (!(rank >= 0 && rank < meta.states.length)) {
    throw new Error(
      `${where}: saved by ${meta.states.length} ranks, no non-tensor state for rank ${rank} (pass stateOf to pick one)`,
    );
  }
  const savedState = meta.states[rank];
  const { tensors: targetLeaves } = flattenState(targets, `${where}: targets`);
  const wants = new Map<string, Want>();
  const add = (name: string, leaf: TensorLeaf) => {
    const rec = meta.tensors[name];
    if (!rec) {
      const names = Object.keys(meta.tensors);
      throw new Error(
        `${where}: tensor '${name}' is not in the checkpoint (it has ${names.length}: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', ...' : ''})`,
      );
    }
    const local = isTensor(leaf) ? leaf : leaf.local;
    const shape = isTensor(leaf) ? leaf.shape : leaf.globalShape;
    if (shape.join(',') !== rec.shape.join(',') || local.dtype !== rec.dtype) {
      throw new Error(
        `${where}: tensor '${name}' is ${rec.dtype} [${rec.shape}] in the checkpoint but the target is ${local.dtype} [${shape}]`,
      );
    }
    const region: Region = {
      offsets: isTensor(leaf) ? leaf.shape.map(() => 0) : leaf.offsets,
      lengths: local.shape,
    };
    const staging =
      opts.inPlace && local.device === 'cpu'
        ? tensorBytes(local, `${where}: target '${name}'`)
        : new Uint8Array(local.numel * rec.itemSize);
    wants.set(name, { name, leaf, local, region, rec, staging });
  };
  for (const [name, leaf] of targetLeaves) add(name, leaf);
  if (opts.strict) {
    for (const name of Object.keys(meta.tensors)) {
      if (!wants.has(name)) throw new Error(`${where}: tensor '${name}' of the checkpoint has no target (strict)`);
    }
  }
  for (const name of tensorRefs(savedState)) {
    if (wants.has(name)) continue;
    const rec = meta.tensors[name];
    if (!rec) throw new Error(`${where}: state references tensor '${name}', which has no record`);
    const leaf =
      opts.materialize?.(name, { dtype: rec.dtype as DType, shape: rec.shape }) ??
      empty(rec.shape, { dtype: rec.dtype as DType });
    add(name, leaf);
  }
  const files = new Map<string, RandomAccessFile>();
  let bytesRead = 0;
  try {
    for (const w of wants.values()) readInto(dir, meta, w, files, (n) => (bytesRead += n));
  } catch (e) {
    // Materialized tensors are ours to free on failure.
    for (const w of wants.values()) if (!targetLeaves.has(w.name)) w.local.dispose();
    if (opts.inPlace && e instanceof Error) e.message += ' (inPlace: the targets may be partly overwritten)';
    throw e;
  } finally {
    for (const f of files.values()) f.close();
  }
  for (const w of wants.values()) {
    if (!(opts.inPlace && w.local.device === 'cpu')) writeTensorBytes(w.local, w.staging);
  }
  const state = resolveState(savedState, (name) => wants.get(name)!.leaf);
  return { step: meta.step, dir, state, bytesRead };
}

function openChecked(
  dir: string,
  meta: DcpMetadata,
  c: ChunkRecord,
  tensor: string,
  files: Map<string, RandomAccessFile>,
): RandomAccessFile {
  let f = files.get(c.file);
  if (f) return f;
  const path = join(dir, c.file);
  const where = `dcp checkpoint ${dir}: tensor '${tensor}'`;
  if (!existsSync(path)) throw new Error(`${where}: missing file ${path}`);
  const want = meta.files[c.file];
  const size = statSync(path).size;
  if (want === undefined || size !== want) {
    throw new Error(
      `${where}: file ${path} is ${size} bytes but the metadata says ${want} (${size < (want ?? 0) ? 'truncated' : 'changed'} shard)`,
    );
  }
  f = nodeFileOpener(path);
  files.set(c.file, f);
  return f;
}

function readInto(
  dir: string,
  meta: DcpMetadata,
  w: Want,
  files: Map<string, RandomAccessFile>,
  count: (n: number) => void,
): void {
  const size = w.rec.itemSize;
  let covered = 0;
  for (const c of w.rec.chunks) {
    const part = intersect(c, w.region);
    if (!part) continue;
    covered += regionNumel(part);
    const f = openChecked(dir, meta, c, w.name, files);
    const [first, end] = elementSpan(c, part);
    const bb = meta.blockBytes;
    const b0 = Math.floor((first * size) / bb);
    const b1 = Math.ceil((end * size) / bb);
    const from = b0 * bb;
    const to = Math.min(b1 * bb, c.byteLength);
    // When this chunk lies whole and contiguous inside the target block, read straight into the
    // staging buffer (no second copy); otherwise into a scratch buffer, then copy the overlap.
    const whole = regionNumel(part) === regionNumel(c);
    const [d0, d1] = elementSpan(w.region, part);
    const direct = whole && d1 - d0 === regionNumel(part);
    const buf = direct ? w.staging.subarray(d0 * size, d1 * size) : new Uint8Array(to - from);
    let done = 0;
    while (done < buf.length) {
      const n = f.read(buf.subarray(done), c.byteOffset + from + done);
      if (!(n > 0)) {
        throw new Error(
          `dcp checkpoint ${dir}: tensor '${w.name}': file ${join(dir, c.file)} ends early (truncated shard)`,
        );
      }
      done += n;
    }
    count(buf.length);
    const crc = checksumFunction(meta.checksum);
    for (let b = b0; b < b1; b++) {
      const lo = b * bb - from;
      const hi = Math.min((b + 1) * bb, c.byteLength) - from;
      if (crc(buf.subarray(lo, hi)) !== c.checksums[b]) {
        throw new Error(
          `dcp checkpoint ${dir}: checksum mismatch in file ${join(dir, c.file)} bytes ` +
            `[${c.byteOffset + b * bb}, ${c.byteOffset + b * bb + hi - lo}) of tensor '${w.name}' ` +
            `(chunk at [${c.offsets}] of [${w.rec.shape}]): the file is corrupt`,
        );
      }
    }
    if (!direct) copyRegion(buf, c, from / size, w.staging, w.region, part, size);
  }
  if (covered !== regionNumel(w.region)) {
    throw new Error(
      `dcp checkpoint ${dir}: tensor '${w.name}': the saved chunks cover ${covered} of the ${regionNumel(w.region)} elements this rank needs`,
    );
  }
}

/** Read every chunk of a checkpoint and verify every checksum (throws naming file and tensor). Returns bytes checked. */
export function verifyCheckpoint(dir: string): number {
  const meta = readMetadata(dir);
  const files = new Map<string, RandomAccessFile>();
  let bytes = 0;
  try {
    for (const [name, rec] of Object.entries(meta.tensors)) {
      const local = { numel: rec.shape.reduce((a, b) => a * b, 1) };
      const w: Want = {
        name,
        leaf: null as never,
        local: local as Tensor,
        region: { offsets: rec.shape.map(() => 0), lengths: rec.shape },
        rec,
        staging: new Uint8Array(local.numel * rec.itemSize),
      };
      readInto(dir, meta, w, files, (n) => (bytes += n));
    }
  } finally {
    for (const f of files.values()) f.close();
  }
  return bytes;
}

/**
 * `resume: 'auto'`: load the newest complete checkpoint under `root` into `targets`, or return
 * null when there is none (a fresh start).
 */
export function resumeCheckpoint(
  root: string,
  targets: StateTree,
  opts: LoadCheckpointOptions = {},
): LoadResult | null {
  const ref = findLatestCheckpoint(root);
  return ref ? loadCheckpoint(ref.dir, targets, opts) : null;
}

export type { ShardedTensor };
export { shardedTensor };
