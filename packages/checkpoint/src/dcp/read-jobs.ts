// Whole chunks that land contiguously in the shared staging buffer are read and verified on two
// threads: this one and a helper worker. Reading from the page cache and checksumming are each
// bound by one core's memory copy / CRC speed, so splitting the chunks between two threads
// roughly halves a validating load on a machine with a free core.

import { Worker } from 'node:worker_threads';
import { makeCrc32c } from './crc32c.js';

/** One chunk to read into the staging buffer and verify block by block. */
export interface ReadJob {
  path: string;
  /** The shared staging buffer (not sent to the worker per job: see runReadJobsParallel). */
  buffer: SharedArrayBuffer;
  /** Byte offset of the chunk in its file. */
  fileOffset: number;
  byteLength: number;
  /** Byte offset in the shared staging buffer. */
  dst: number;
  /** Expected checksum of each block of `blockBytes` (the last may be shorter). */
  checksums: number[];
  /** Error text for a short read and a mismatch (`{b}` = block index, `{lo}`/`{hi}` = file bytes). */
  truncated: string;
  mismatch: string;
}

/** Below this many bytes the worker's round trip costs more than it saves. */
let parallelMinBytes = 16 << 20;

/** @internal Set the size from which loads use the helper thread (tests use 0); returns the previous one. */
export function setParallelLoadMinBytes(bytes: number): number {
  const prev = parallelMinBytes;
  parallelMinBytes = bytes;
  return prev;
}
const SEGMENT_BYTES = 4 << 20;
/** A helper that has not answered by then is taken for dead (its thread may have crashed). */
const HELPER_TIMEOUT_MS = 600_000;

/**
 * Run the jobs; returns the error message of the first failing job, or null. Self-contained
 * (its source is sent to the worker): `fs` is node:fs, `crc` the block checksum function.
 */
function runReadJobs(
  fs: typeof import('node:fs'),
  crc: (d: Uint8Array) => number,
  buffer: SharedArrayBuffer,
  jobs: ReadJob[],
  blockBytes: number,
  segmentBytes: number,
): string | null {
  const seg = Math.max(blockBytes, Math.floor(segmentBytes / blockBytes) * blockBytes);
  for (const j of jobs) {
    const fd = fs.openSync(j.path, 'r');
    try {
      const buf = new Uint8Array(buffer, j.dst, j.byteLength);
      for (let s0 = 0; s0 < buf.length; s0 += seg) {
        const piece = buf.subarray(s0, Math.min(buf.length, s0 + seg));
        let done = 0;
        while (done < piece.length) {
          const n = fs.readSync(fd, piece, done, piece.length - done, j.fileOffset + s0 + done);
          if (!(n > 0)) return j.truncated;
          done += n;
        }
        // Each block is verified right after its segment is read, while it is in cache.
        for (let lo = 0; lo < piece.length; lo += blockBytes) {
          const b = (s0 + lo) / blockBytes;
          const hi = Math.min(piece.length, lo + blockBytes);
          if (crc(piece.subarray(lo, hi)) !== j.checksums[b]) {
            return j.mismatch
              .replace('{lo}', String(j.fileOffset + s0 + lo))
              .replace('{hi}', String(j.fileOffset + s0 + hi));
          }
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return null;
}

const WORKER_SOURCE = `
const { parentPort } = process.getBuiltinModule('node:worker_threads');
const fs = process.getBuiltinModule('node:fs');
const { crc32 } = process.getBuiltinModule('node:zlib');
const makeCrc32c = (${makeCrc32c.toString()});
const runReadJobs = (${runReadJobs.toString()});
let c32c = null;
parentPort.on('message', (m) => {
  const flag = new Int32Array(m.flag, 0, 2);
  let error = null;
  try {
    const crc = m.checksum === 'crc32' ? (d) => crc32(d) : (c32c ??= makeCrc32c());
    error = runReadJobs(fs, crc, m.buffer, m.jobs, m.blockBytes, m.segmentBytes);
  } catch (e) {
    error = 'load helper thread failed: ' + ((e && e.message) || e);
  }
  if (error !== null) {
    const bytes = Buffer.from(error, 'utf8').subarray(0, m.flag.byteLength - 8);
    new Uint8Array(m.flag, 8).set(bytes);
    Atomics.store(flag, 1, bytes.length);
  }
  Atomics.store(flag, 0, error === null ? 1 : 2);
  Atomics.notify(flag, 0);
});`;

let helper: Worker | null = null;
let helperBytesTotal = 0;

/** @internal Bytes read by the helper thread since the process started (tests check it took part). */
export function helperLoadBytes(): number {
  return helperBytesTotal;
}

function helperWorker(): Worker {
  if (!helper) {
    helper = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] });
    helper.unref();
    helper.on('error', () => {
      helper = null;
    });
  }
  return helper;
}

/**
 * Read and verify `jobs` into `buffer`, splitting them by bytes between this thread and a helper
 * worker when there is enough to split. Throws the first failure's message (only the staging
 * buffer has been written).
 */
export function runReadJobsParallel(
  jobs: ReadJob[],
  buffer: SharedArrayBuffer,
  blockBytes: number,
  checksum: string,
  crc: (d: Uint8Array) => number,
  fs: typeof import('node:fs'),
): void {
  const total = jobs.reduce((s, j) => s + j.byteLength, 0);
  if (jobs.length < 2 || total < parallelMinBytes) {
    const e = runReadJobs(fs, crc, buffer, jobs, blockBytes, SEGMENT_BYTES);
    if (e) throw new Error(e);
    return;
  }
  // Greedy split by bytes, largest first.
  const mine: ReadJob[] = [];
  const theirs: ReadJob[] = [];
  let a = 0;
  let b = 0;
  for (const j of [...jobs].sort((x, y) => y.byteLength - x.byteLength)) {
    if (a <= b) {
      mine.push(j);
      a += j.byteLength;
    } else {
      theirs.push(j);
      b += j.byteLength;
    }
  }
  // [0]: 0 running, 1 ok, 2 failed; [1]: error text length; from byte 8: the text (this thread
  // is blocked while it waits, so the answer cannot come as a message).
  helperBytesTotal += b;
  const shared = new SharedArrayBuffer(8 + 4096);
  const flag = new Int32Array(shared, 0, 2);
  helperWorker().postMessage({ flag: shared, buffer, jobs: theirs, blockBytes, segmentBytes: SEGMENT_BYTES, checksum });
  let mineError: string | null = null;
  try {
    mineError = runReadJobs(fs, crc, buffer, mine, blockBytes, SEGMENT_BYTES);
  } catch (e) {
    mineError = (e as Error).message;
  }
  // Always wait for the helper before returning or throwing: it writes into the staging buffer.
  const deadline = Date.now() + HELPER_TIMEOUT_MS;
  while (Atomics.load(flag, 0) === 0) {
    if (Date.now() > deadline) {
      helper = null;
      throw new Error(`load helper thread did not finish within ${HELPER_TIMEOUT_MS / 1000} s`);
    }
    Atomics.wait(flag, 0, 0, 1000);
  }
  if (mineError) throw new Error(mineError);
  if (Atomics.load(flag, 0) === 2) {
    const text = Buffer.from(new Uint8Array(shared, 8, Atomics.load(flag, 1))).toString('utf8');
    throw new Error(text);
  }
}
