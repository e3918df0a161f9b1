import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type DType, empty, isInitialized, type Tensor, worldGroup } from '@omnitrain/core';
import { checksumFunction } from './crc32c.js';
import type { ChunkRecord, DcpMetadata, TensorRecord } from './job.js';
import { type ReadJob, readAndVerify, readAndVerifyParallel } from './read-jobs.js';
import { hostBuffer, waitForPendingSave } from './save.js';
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
   * Read straight into the (CPU) targets instead of into the staging buffer first (default false).
   * Saves one memcpy, but a corrupt or missing block found midway leaves the targets partly
   * overwritten (the error says so); the default changes nothing on error.
   */
  inPlace?: boolean;
  /**
   * Load only the checkpoint tensors whose name passes (e.g. `(n) => n.startsWith('model.')` to
   * skip the optimizer's moments): targets and state references failing it are neither read nor
   * materialized, and such references resolve to `null` in the returned state.
   */
  filter?: (name: string) => boolean;
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
  /** Where the bytes are read to: the target itself (in place) or its slot of the staging buffer. */
  staging: Uint8Array;
  /** True when `staging` is a slot of the staging buffer, copied into the target once all is verified. */
  staged: boolean;
}

const ALIGN = 64;

let scratchPool: Uint8Array | null = null;

/** A scratch buffer reused by the chunks of one load that must be rearranged (resharding). */
function scratch(bytes: number): Uint8Array {
  if (!scratchPool || scratchPool.length < bytes) {
    scratchPool = null;
    scratchPool = new Uint8Array(Math.max(bytes, 1));
  }
  return scratchPool.subarray(0, bytes);
}

/**
 * Load checkpoint folder `dir` into `targets` (a state tree shaped like the saved one, whose
 * tensor leaves give this rank's layout: full tensors or {@link shardedTensor} blocks — any
 * world size or sharding). Each target reads only the checksum blocks of the chunks it overlaps;
 * every block read is verified. Everything is read and checked before any target is written:
 * on error nothing was changed (unless `opts.inPlace`). The bytes are staged in one host buffer
 * kept for later loads and async saves (shared with {@link reserveSaveBuffer}; free it with
 * {@link releaseSaveBuffer}): after the first use, staging costs no allocation or page faults,
 * and committing is one memcpy per target. Tensors materialized for state references are read
 * in place (they are new, and freed on error).
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
    const direct = (opts.inPlace || !targetLeaves.has(name)) && local.device === 'cpu';
    const staging = direct ? tensorBytes(local, `${where}: target '${name}'`) : new Uint8Array(0);
    wants.set(name, { name, leaf, local, region, rec, staging, staged: !direct });
  };
  const pass = opts.filter ?? (() => true);
  for (const [name, leaf] of targetLeaves) if (pass(name)) add(name, leaf);
  if (opts.strict) {
    for (const name of Object.keys(meta.tensors)) {
      if (!targetLeaves.has(name) && pass(name))
        throw new Error(`${where}: tensor '${name}' of the checkpoint has no target (strict)`);
    }
  }
  for (const name of tensorRefs(savedState)) {
    if (wants.has(name) || !pass(name)) continue;
    const rec = meta.tensors[name];
    if (!rec) throw new Error(`${where}: state references tensor '${name}', which has no record`);
    const leaf =
      opts.materialize?.(name, { dtype: rec.dtype as DType, shape: rec.shape }) ??
      empty(rec.shape, { dtype: rec.dtype as DType });
    add(name, leaf);
  }
  const checked = new Set<string>();
  let bytesRead = 0;
  try {
    // One staging slot per target that is not read in place, in the reused host buffer.
    let at = 0;
    const slots: [Want, number, number][] = [];
    for (const w of wants.values()) {
      if (!w.staged) continue;
      const n = w.local.numel * w.rec.itemSize;
      slots.push([w, at, n]);
      at += Math.ceil(n / ALIGN) * ALIGN;
    }
    if (slots.length) {
      waitForPendingSave(); // the buffer may still be read by the save worker
      const host = hostBuffer(at);
      for (const [w, off, n] of slots) w.staging = host.subarray(off, off + n);
    }
    // Whole chunks bound for the shared staging buffer become jobs read on two threads.
    const jobs: ReadJob[] = [];
    for (const w of wants.values()) readInto(dir, meta, w, checked, (n) => (bytesRead += n), jobs);
    const crc = checksumFunction(meta.checksum);
    readAndVerifyParallel(jobs, meta.blockBytes, meta.checksum, crc);
  } catch (e) {
    // Materialized tensors are ours to free on failure.
    for (const w of wants.values()) if (!targetLeaves.has(w.name)) w.local.dispose();
    if (opts.inPlace && e instanceof Error) e.message += ' (inPlace: the targets may be partly overwritten)';
    throw e;
  } finally {
    scratchPool = null; // reused across the chunks of one load only
  }
  for (const w of wants.values()) if (w.staged) writeTensorBytes(w.local, w.staging);
  const state = resolveState(savedState, (name) => wants.get(name)?.leaf ?? null);
  return { step: meta.step, dir, state, bytesRead };
}

/** The path of a chunk's file, checked once per load: it exists and has the size the metadata says. */
function checkedPath(dir: string, meta: DcpMetadata, c: ChunkRecord, tensor: string, checked: Set<string>): string {
  const path = join(dir, c.file);
  if (checked.has(c.file)) return path;
  const where = `dcp checkpoint ${dir}: tensor '${tensor}'`;
  if (!existsSync(path)) throw new Error(`${where}: missing file ${path}`);
  const want = meta.files[c.file];
  const size = statSync(path).size;
  if (want === undefined || size !== want) {
    throw new Error(
      `${where}: file ${path} is ${size} bytes but the metadata says ${want} (${size < (want ?? 0) ? 'truncated' : 'changed'} shard)`,
    );
  }
  checked.add(c.file);
  return path;
}

/**
 * Read (and verify) the checksum blocks of `w`'s chunks that overlap its region. A whole chunk
 * bound contiguously for the shared staging buffer is only queued in `jobs` (read later, on two
 * threads); the others are read now, into the target slot or a scratch buffer then rearranged.
 */
function readInto(
  dir: string,
  meta: DcpMetadata,
  w: Want,
  checked: Set<string>,
  count: (n: number) => void,
  jobs: ReadJob[],
): void {
  const crc = checksumFunction(meta.checksum);
  const size = w.rec.itemSize;
  let covered = 0;
  for (const c of w.rec.chunks) {
    const part = intersect(c, w.region);
    if (!part) continue;
    covered += regionNumel(part);
    const path = checkedPath(dir, meta, c, w.name, checked);
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
    const buf = direct ? w.staging.subarray(d0 * size, d1 * size) : scratch(to - from);
    const job: ReadJob = {
      path,
      fileOffset: c.byteOffset + from,
      dst: buf,
      checksums: c.checksums.slice(b0, b1),
      truncated: `dcp checkpoint ${dir}: tensor '${w.name}': file ${path} ends early (truncated shard)`,
      mismatch:
        `dcp checkpoint ${dir}: checksum mismatch in file ${path} bytes [{lo}, {hi}) of tensor '${w.name}' ` +
        `(chunk at [${c.offsets}] of [${w.rec.shape}]): the file is corrupt`,
    };
    count(buf.length);
    if (direct && w.staged && buf.buffer instanceof SharedArrayBuffer) {
      jobs.push(job);
      continue;
    }
    readAndVerify([job], bb, crc);
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
  const checked = new Set<string>();
  let bytes = 0;
  for (const [name, rec] of Object.entries(meta.tensors)) {
    const local = { numel: rec.shape.reduce((a, b) => a * b, 1) };
    const w: Want = {
      name,
      leaf: null as never,
      local: local as Tensor,
      region: { offsets: rec.shape.map(() => 0), lengths: rec.shape },
      rec,
      staging: new Uint8Array(local.numel * rec.itemSize),
      staged: false,
    };
    readInto(dir, meta, w, checked, (n) => (bytes += n), []);
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
