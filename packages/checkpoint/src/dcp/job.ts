// The write-and-commit job of a save. `runSaveJob` is self-contained (it imports nothing and
// refers to nothing outside its body): the background worker of an async save receives its
// source text, and a synchronous save calls it directly.

/** One chunk of a tensor as recorded in a rank file and in `metadata.json`. */
export interface ChunkRecord {
  /** Tensor name. */
  name: string;
  /** Start of the chunk in the global tensor, per dim. */
  offsets: number[];
  /** Extent of the chunk per dim. */
  lengths: number[];
  /** File (relative to the checkpoint folder) holding the bytes. */
  file: string;
  /** Where the chunk's bytes start in `file`. */
  byteOffset: number;
  /** Bytes of the chunk (`prod(lengths) * itemSize`). */
  byteLength: number;
  /** Checksum (`metadata.checksum`) of each `blockBytes` block of the chunk's bytes (the last may be shorter). */
  checksums: number[];
}

/** Global description of a tensor in `metadata.json`. */
export interface TensorRecord {
  /** Core dtype name (`float32`, `bfloat16`...). */
  dtype: string;
  /** Bytes per element. */
  itemSize: number;
  /** Global shape. */
  shape: number[];
  /** Every saved chunk; together they cover the tensor exactly once. */
  chunks: ChunkRecord[];
}

/** `metadata.json` of a committed checkpoint. */
export interface DcpMetadata {
  format: 'omnitrain-dcp';
  version: 1;
  step: number;
  worldSize: number;
  blockBytes: number;
  /** Checksum of every block: `crc32` (IEEE, zlib's native one) or `crc32c` (Castagnoli). */
  checksum: ChecksumKind;
  /** Size in bytes of every data file. */
  files: Record<string, number>;
  tensors: Record<string, TensorRecord>;
  /** The non-tensor state tree of every rank (tensor leaves are `{"$tensor": name}`). */
  states: unknown[];
}

/** Block checksum algorithms. */
export type ChecksumKind = 'crc32' | 'crc32c';

/** What a rank hands to {@link runSaveJob}. */
export interface SaveJob {
  root: string;
  step: number;
  rank: number;
  worldSize: number;
  keep: number;
  timeoutMs: number;
  blockBytes: number;
  checksum: ChecksumKind;
  /** This rank's tensors (dtype, itemSize, global shape). */
  tensors: Record<string, { dtype: string; itemSize: number; shape: number[] }>;
  /** This rank's chunks, `checksums` still empty, in file order. */
  chunks: ChunkRecord[];
  /** The bytes of each chunk. */
  buffers: Uint8Array[];
  /** This rank's state tree as JSON text. */
  state: string;
  /** Test hook: milliseconds to sleep between writes (widens the window of the crash test). */
  slowMs?: number;
}

/**
 * Write this rank's data file and rank record into `<root>/step-N.tmp/`; rank 0 then waits for
 * every rank's record, writes `metadata.json`, fsyncs, renames the folder to `step-N`, updates
 * `latest` (temp + rename) and removes all but the newest `keep` checkpoints.
 * Returns the bytes this rank wrote.
 */
export function runSaveJob(job: SaveJob, crc: (d: Uint8Array, seed?: number) => number): number {
  const fs = process.getBuiltinModule('node:fs') as typeof import('node:fs');
  const path = process.getBuiltinModule('node:path') as typeof import('node:path');
  const sleepCell = new Int32Array(new SharedArrayBuffer(4));
  const sleep = (ms: number) => {
    if (ms > 0) Atomics.wait(sleepCell, 0, 0, ms);
  };
  const pad = (r: number) => String(r).padStart(5, '0');
  const fsyncPath = (p: string) => {
    let fd = -1;
    try {
      fd = fs.openSync(p, 'r');
      fs.fsyncSync(fd);
    } catch {
      // fsync of a folder is best effort.
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  };
  const writeAll = (fd: number, data: Uint8Array, position: number) => {
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(fd, data, done, Math.min(data.length - done, 1 << 30), position + done);
      if (job.slowMs) sleep(job.slowMs);
    }
  };
  const writeFileAtomic = (file: string, text: string) => {
    const tmp = `${file}.tmp-${process.pid}`;
    const fd = fs.openSync(tmp, 'w');
    try {
      writeAll(fd, new TextEncoder().encode(text), 0);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  };
  const name = `step-${job.step}`;
  const tmpDir = path.join(job.root, `${name}.tmp`);
  const finalDir = path.join(job.root, name);
  const dataFile = `rank-${pad(job.rank)}.bin`;

  // 1. The data file.
  const fd = fs.openSync(path.join(tmpDir, dataFile), 'w');
  let end = 0;
  try {
    job.chunks.forEach((c, i) => {
      const bytes = job.buffers[i]!;
      c.checksums = [];
      for (let at = 0; at < bytes.length; at += job.blockBytes) {
        c.checksums.push(crc(bytes.subarray(at, Math.min(bytes.length, at + job.blockBytes))));
      }
      writeAll(fd, bytes, c.byteOffset);
      end = Math.max(end, c.byteOffset + c.byteLength);
    });
    fs.ftruncateSync(fd, end);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // 2. The rank record (atomically: its presence means the data file is complete and synced).
  const record = {
    rank: job.rank,
    file: dataFile,
    size: end,
    tensors: job.tensors,
    chunks: job.chunks,
    state: job.state,
  };
  writeFileAtomic(path.join(tmpDir, `rank-${pad(job.rank)}.json`), JSON.stringify(record));
  if (job.rank !== 0) return end;

  // 3. Rank 0: wait for every rank, then commit.
  const deadline = Date.now() + job.timeoutMs;
  const records: (typeof record)[] = [];
  for (let r = 0; r < job.worldSize; r++) {
    const f = path.join(tmpDir, `rank-${pad(r)}.json`);
    while (!fs.existsSync(f)) {
      if (Date.now() > deadline) {
        throw new Error(
          `dcp save step ${job.step}: rank ${r} did not finish writing ${tmpDir} within ${job.timeoutMs} ms`,
        );
      }
      sleep(5);
    }
    records.push(JSON.parse(fs.readFileSync(f, 'utf8')));
  }
  const meta: DcpMetadata = {
    format: 'omnitrain-dcp',
    version: 1,
    step: job.step,
    worldSize: job.worldSize,
    blockBytes: job.blockBytes,
    checksum: job.checksum,
    files: {},
    tensors: {},
    states: [],
  };
  for (const rec of records) {
    meta.files[rec.file] = rec.size;
    meta.states.push(JSON.parse(rec.state));
    for (const [t, info] of Object.entries(rec.tensors)) {
      const have = meta.tensors[t];
      if (!have) meta.tensors[t] = { ...info, chunks: [] };
      else if (have.dtype !== info.dtype || have.shape.join(',') !== info.shape.join(',')) {
        throw new Error(
          `dcp save step ${job.step}: tensor '${t}' is ${info.dtype} [${info.shape}] on rank ${rec.rank} ` +
            `but ${have.dtype} [${have.shape}] on another rank`,
        );
      }
    }
    for (const c of rec.chunks) meta.tensors[c.name]!.chunks.push(c);
  }
  // Every tensor must be covered exactly once by its chunks.
  for (const [t, info] of Object.entries(meta.tensors)) {
    const numel = info.shape.reduce((a, b) => a * b, 1);
    let sum = 0;
    for (const c of info.chunks) sum += c.lengths.reduce((a, b) => a * b, 1);
    const overlaps = (a: ChunkRecord, b: ChunkRecord) =>
      a.offsets.every((o, d) => o < b.offsets[d]! + b.lengths[d]! && b.offsets[d]! < o + a.lengths[d]!);
    let overlap = false;
    for (let i = 0; i < info.chunks.length && !overlap; i++)
      for (let j = i + 1; j < info.chunks.length && !overlap; j++)
        if (overlaps(info.chunks[i]!, info.chunks[j]!) && numel > 0) overlap = true;
    if (overlap || sum !== numel) {
      throw new Error(
        `dcp save step ${job.step}: the chunks of tensor '${t}' [${info.shape}] ` +
          `${overlap ? 'overlap' : `cover ${sum} of ${numel} elements`} (each element must be saved by exactly one rank)`,
      );
    }
  }
  const refs = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.$tensor === 'string') refs.add(o.$tensor);
      else Object.values(o).forEach(walk);
    }
  };
  meta.states.forEach(walk);
  for (const t of refs) {
    if (!meta.tensors[t]) {
      throw new Error(
        `dcp save step ${job.step}: tensor '${t}' is in a rank's state but no rank saved its data ` +
          '(plain tensors are saved by rank 0 only; wrap rank-owned data with shardedTensor())',
      );
    }
  }
  writeFileAtomic(path.join(tmpDir, 'metadata.json'), JSON.stringify(meta));
  fsyncPath(tmpDir);
  if (fs.existsSync(finalDir)) {
    const old = path.join(job.root, `.${name}.del-${process.pid}`);
    fs.renameSync(finalDir, old);
    fs.rmSync(old, { recursive: true, force: true });
  }
  fs.renameSync(tmpDir, finalDir); // the commit point
  fsyncPath(job.root);
  writeFileAtomic(path.join(job.root, 'latest'), `${name}\n`);
  fsyncPath(job.root);
  // Keep the newest `keep`; remove leftovers of interrupted saves of older steps.
  const entries = fs.readdirSync(job.root);
  const steps = entries
    .map((e) => /^step-(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const s of steps.slice(Math.max(1, job.keep))) {
    const dir = path.join(job.root, `step-${s}`);
    const del = path.join(job.root, `.step-${s}.del-${process.pid}`);
    fs.renameSync(dir, del);
    fs.rmSync(del, { recursive: true, force: true });
  }
  for (const e of entries) {
    const m = /^step-(\d+)\.tmp$/.exec(e);
    if ((m && Number(m[1]) < job.step) || /^\.step-\d+\.del-/.test(e)) {
      fs.rmSync(path.join(job.root, e), { recursive: true, force: true });
    }
  }
  fsyncPath(job.root);
  return end;
}
