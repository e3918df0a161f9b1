import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { itemSize, type ProcessGroup } from '@omnitrain/core';
import { type Coordinator, defaultCoordinator } from './coordinator.js';
import { checksumFunction, makeCrc32c } from './crc32c.js';
import { type ChecksumKind, type ChunkRecord, runSaveJob, type SaveJob } from './job.js';
import { isTensor, tensorBytes } from './sharded-tensor.js';
import { flattenState, type StateTree } from './state-tree.js';

/** Options of {@link saveCheckpoint}. */
export interface SaveOptions {
  /** Who the other ranks are (default: the world group when initialized, else one process). */
  coordinator?: Coordinator | ProcessGroup;
  /** Keep the newest `keep` checkpoints, remove older ones (default 3). */
  keep?: number;
  /**
   * Copy the tensors to host memory, return, and write in a background thread (default false).
   * The copy goes into a host buffer kept for the next async saves (see {@link reserveSaveBuffer},
   * {@link releaseSaveBuffer}); checksums are computed by the background thread.
   * The next save (or {@link waitForPendingSave}) waits for it.
   */
  async?: boolean;
  /** Checksum block size in bytes (default 1 MiB): a load reads and verifies whole blocks. */
  blockBytes?: number;
  /** Block checksum: `crc32` (default; zlib's native CRC-32, ~2.4 GB/s here) or `crc32c` (Castagnoli, in TypeScript, ~0.3 GB/s). */
  checksum?: ChecksumKind;
  /** How long rank 0 waits for the other ranks' files (default 600 000 ms). */
  timeoutMs?: number;
  /** @internal Test hook: sleep this many ms after each write. */
  slowMs?: number;
}

/** A save in progress or done. */
export interface SaveHandle {
  readonly step: number;
  /** The folder the checkpoint is committed to (`<root>/step-N`). */
  readonly dir: string;
  /** True once this rank's part (and on rank 0 the commit) finished. */
  readonly done: boolean;
  /** Block until done; throws the background error if the write failed. */
  wait(): void;
  /** Milliseconds the call blocked the caller. */
  readonly blockedMs: number;
}

const WORKER_SOURCE = `
const { workerData } = process.getBuiltinModule('node:worker_threads');
const crc = workerData.job.checksum === 'crc32'
  ? process.getBuiltinModule('node:zlib').crc32
  : (${makeCrc32c.toString()})();
const run = (${runSaveJob.toString()});
const flag = new Int32Array(workerData.flag);
try {
  const bytes = run(workerData.job, crc);
  workerData.port.postMessage({ ok: true, bytes });
  Atomics.store(flag, 0, 1);
} catch (e) {
  workerData.port.postMessage({ ok: false, error: String((e && e.message) || e) });
  Atomics.store(flag, 0, 2);
}
Atomics.notify(flag, 0);
`;

interface Pending {
  flag: Int32Array;
  port: MessagePort;
  result: { ok: boolean; error?: string } | null;
  step: number;
}

let pending: Pending | null = null;

function finish(p: Pending): void {
  if (!p.result) {
    while (Atomics.load(p.flag, 0) === 0) Atomics.wait(p.flag, 0, 0, 1000);
    const m = receiveMessageOnPort(p.port);
    p.result = (m?.message as Pending['result']) ?? { ok: false, error: 'the save worker exited without a result' };
    p.port.close();
  }
  if (pending === p) pending = null;
  if (!p.result.ok) throw new Error(`dcp async save of step ${p.step} failed: ${p.result.error}`);
}

/** Block until the last async save finished (throws its error, once). */
export function waitForPendingSave(): void {
  if (pending) finish(pending);
}

const ALIGN = 64;

let pool: Uint8Array | null = null;

/**
 * @internal The host staging buffer of async saves (shared with the save worker) and of
 * validating loads, grown to at least `bytes` and reused by every later async save or load:
 * after the first use, taking a snapshot (or staging a load) writes into memory that is already
 * mapped (no allocation, no page faults). Callers wait for a pending async save first.
 */
export function hostBuffer(bytes: number): Uint8Array {
  if (!pool || pool.length < bytes) {
    pool = null; // let the old one go before mapping the new one
    pool = new Uint8Array(new SharedArrayBuffer(Math.max(bytes, 1)));
  }
  return pool;
}

/**
 * Reserve the host staging buffer of async saves and validating loads ahead of time (`bytes`:
 * this rank's share of a checkpoint, e.g. the sum of its tensors' byte lengths plus 64 per
 * tensor), so that even the first async save (or load) only copies. Its pages are touched (atomically, without changing them) in a
 * background thread; this returns at once.
 */
export function reserveSaveBuffer(bytes: number): void {
  const host = hostBuffer(bytes);
  const w = new Worker(
    'const { workerData: b } = process.getBuiltinModule("node:worker_threads"); const u = new Uint8Array(b); for (let i = 0; i < u.length; i += 4096) Atomics.add(u, i, 0);',
    { eval: true, execArgv: [], workerData: host.buffer },
  );
  w.unref();
}

/**
 * Free the host staging buffer of async saves and loads (the next async save or load allocates
 * it again). Waits for a pending save first.
 */
export function releaseSaveBuffer(): void {
  waitForPendingSave();
  pool = null;
}

/**
 * Save `state` as checkpoint `step` under `root` (every rank calls it with its own tree).
 * Each rank writes `step-N.tmp/rank-R.bin` (its chunks, checksummed per block with CRC32C) and
 * `rank-R.json`; rank 0 gathers those, writes `metadata.json`, fsyncs, renames the folder to
 * `step-N` (the commit point), points `latest` at it (temp + rename) and keeps the newest
 * `opts.keep`. A crash at any moment leaves the previous checkpoint loadable.
 */
export function saveCheckpoint(root: string, step: number, state: StateTree, opts: SaveOptions = {}): SaveHandle {
  const t0 = performance.now();
  if (!(Number.isSafeInteger(step) && step >= 0))
    throw new Error(`saveCheckpoint: step ${step} must be an integer >= 0`);
  const coord = defaultCoordinator(opts.coordinator);
  const where = `dcp save ${root} step ${step} rank ${coord.rank}`;
  waitForPendingSave();
  const blockBytes = opts.blockBytes ?? 1 << 20;
  const { tensors, json } = flattenState(state, where);
  const job: SaveJob = {
    root,
    step,
    rank: coord.rank,
    worldSize: coord.size,
    keep: opts.keep ?? 3,
    timeoutMs: opts.timeoutMs ?? 600_000,
    blockBytes,
    checksum: opts.checksum ?? 'crc32',
    tensors: {},
    chunks: [],
    buffers: [],
    state: JSON.stringify(json),
    slowMs: opts.slowMs,
  };
  const file = `rank-${String(coord.rank).padStart(5, '0')}.bin`;
  let at = 0;
  for (const [name, leaf] of tensors) {
    const t = isTensor(leaf) ? leaf : leaf.local;
    const shape = isTensor(leaf) ? [...leaf.shape] : [...leaf.globalShape];
    const offsets = isTensor(leaf) ? leaf.shape.map(() => 0) : [...leaf.offsets];
    const size = itemSize(t.dtype);
    job.tensors[name] = { dtype: t.dtype, itemSize: size, shape };
    if (isTensor(leaf) && coord.rank !== 0) continue; // replicated: rank 0 saves it
    if (t.numel === 0) continue;
    const bytes = tensorBytes(t, `${where}: tensor '${name}'`);
    const chunk: ChunkRecord = {
      name,
      offsets,
      lengths: [...t.shape],
      file,
      byteOffset: at,
      byteLength: bytes.length,
      checksums: [],
    };
    job.chunks.push(chunk);
    job.buffers.push(bytes);
    at += Math.ceil(bytes.length / ALIGN) * ALIGN;
  }
  if (opts.async) {
    // One memcpy per chunk into the reused shared host buffer, at the chunk's file offset; the
    // worker reads it in place (nothing is cloned or transferred) and checksums it there.
    // (Non-CPU tensors were already read into a fresh host array by tensorBytes: one copy more.)
    const host = hostBuffer(at);
    job.chunks.forEach((c, i) => {
      host.set(job.buffers[i]!, c.byteOffset);
      job.buffers[i] = host.subarray(c.byteOffset, c.byteOffset + c.byteLength);
    });
  }
  const tmpDir = join(root, `step-${step}.tmp`);
  if (coord.rank === 0) {
    mkdirSync(root, { recursive: true });
    rmSync(tmpDir, { recursive: true, force: true });
    mkdirSync(tmpDir);
  }
  coord.barrier();
  const dir = join(root, `step-${step}`);
  if (!opts.async) {
    runSaveJob(job, checksumFunction(job.checksum));
    coord.barrier();
    const blockedMs = performance.now() - t0;
    return { step, dir, done: true, wait() {}, blockedMs };
  }
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const p: Pending = { flag, port: port1, result: null, step };
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    execArgv: [],
    workerData: { job, flag: flag.buffer, port: port2 },
    transferList: [port2],
  });
  worker.on('error', () => {
    // Reported through the flag / port (or as 'exited without a result').
    if (Atomics.load(flag, 0) === 0) {
      Atomics.store(flag, 0, 2);
    }
  });
  pending = p;
  const blockedMs = performance.now() - t0;
  return {
    step,
    dir,
    get done() {
      return p.result !== null || Atomics.load(flag, 0) !== 0;
    },
    wait() {
      finish(p);
    },
    blockedMs,
  };
}
