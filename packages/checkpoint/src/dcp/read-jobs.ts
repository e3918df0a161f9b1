// Reading a checkpoint's byte ranges and verifying them block by block. Whole chunks that land
// contiguously in the shared staging buffer are split between this thread and a helper worker:
// reading from the page cache and checksumming are each bound by one core's memory copy / CRC
// speed, so two threads roughly halve a validating load on a machine with a free core.

import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { makeCrc32c } from './crc32c.js';

/** A byte range of a file, starting on a checksum block boundary, to read into `dst` and verify. */
export interface ReadJob {
  path: string;
  /** Byte offset of the range in its file. */
  fileOffset: number;
  /** Where the bytes go (its length is the range's); over a SharedArrayBuffer for the helper thread. */
  dst: Uint8Array;
  /** Expected checksum of each block of `blockBytes` in the range (the last may be shorter). */
  checksums: number[];
  /** Error text for a short read and for a mismatch (`{lo}`/`{hi}` = the block's file bytes). */
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
  jobs: ReadJob[],
  blockBytes: number,
  segmentBytes: number,
): string | null {
  const seg = Math.max(blockBytes, Math.floor(segmentBytes / blockBytes) * blockBytes);
  for (const j of jobs) {
    const fd = fs.openSync(j.path, 'r');
    try {
      const buf = j.dst;
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
    error = runReadJobs(fs, crc, m.jobs, m.blockBytes, m.segmentBytes);
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

/** Read and verify `jobs` on this thread; throws the first failure's message. */
export function readAndVerify(jobs: ReadJob[], blockBytes: number, crc: (d: Uint8Array) => number): void {
  const e = runReadJobs(fs, crc, jobs, blockBytes, SEGMENT_BYTES);
  if (e) throw new Error(e);
}

/**
 * Read and verify `jobs` (whose `dst` views lie over SharedArrayBuffers), splitting them by bytes
 * between this thread and a helper worker when there is enough to split. Throws the first
 * failure's message (only the `dst` views have been written).
 */
export function readAndVerifyParallel(
  jobs: ReadJob[],
  blockBytes: number,
  checksum: string,
  crc: (d: Uint8Array) => number,
): void {
  const total = jobs.reduce((s, j) => s + j.dst.length, 0);
  if (jobs.length < 2 || total < parallelMinBytes) {
    readAndVerify(jobs, blockBytes, crc);
    return;
  }
  // Greedy split by bytes, largest first.
  const mine: ReadJob[] = [];
  const theirs: ReadJob[] = [];
  let a = 0;
  let b = 0;
  for (const j of [...jobs].sort((x, y) => y.dst.length - x.dst.length)) {
    if (a <= b) {
      mine.push(j);
      a += j.dst.length;
    } else {
      theirs.push(j);
      b += j.dst.length;
    }
  }
  helperBytesTotal += b;
  // [0]: 0 running, 1 ok, 2 failed; [1]: error text length; from byte 8: the text (this thread
  // is blocked while it waits, so the answer cannot come as a message).
  const shared = new SharedArrayBuffer(8 + 4096);
  const flag = new Int32Array(shared, 0, 2);
  helperWorker().postMessage({ flag: shared, jobs: theirs, blockBytes, segmentBytes: SEGMENT_BYTES, checksum });
  let mineError: string | null = null;
  try {
    mineError = runReadJobs(fs, crc, mine, blockBytes, SEGMENT_BYTES);
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
