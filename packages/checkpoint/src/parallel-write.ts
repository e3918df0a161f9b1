import {
  closeSync,
  cpSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ProcessGroup } from '@omnitrain/core';
import { type Coordinator, defaultCoordinator } from './dcp/coordinator.js';
import { tensorBytes } from './dcp/sharded-tensor.js';
import { type FileWriteOpener, nodeFileWriteOpener, type WritableFile, writeFully } from './file-io.js';
import { type ParallelTensor, type RowBlock, rowBlockOf } from './row-block.js';
import { INDEX_FILE, SINGLE_FILE } from './sharded-reader.js';
import {
  checkMetadata,
  indexText,
  layout,
  packShards,
  parseSize,
  SHARD_RE,
  shardFileName,
  type WriteDirOptions,
  type WriteResult,
  writeAtomically,
} from './writer.js';

/** Options of {@link writeSafetensorsDirParallel}. */
export interface ParallelWriteOptions extends WriteDirOptions {
  /** Who the other ranks are (default: the world group when initialized, else one process). */
  coordinator?: Coordinator | ProcessGroup;
  /** How files are opened for positional writes (default: Node file descriptors); tests count bytes with it. */
  opener?: FileWriteOpener;
  /** @internal Test hook: SIGKILL this process after this many positional data writes. */
  crashAfterWrites?: number;
}

/** What {@link writeSafetensorsDirParallel} produced. */
export interface ParallelWriteResult extends WriteResult {
  /** Bytes of tensor data this rank wrote (its rows only; rank 0 also wrote the headers and the index). */
  bytesWritten: number;
}

/** One tensor of one rank, as exchanged: name, dtype, global shape, first row, rows, replicated (1) or a row block (0). */
type Decl = [string, string, number[], number, number, 0 | 1];

interface Message {
  tmp?: string;
  /** The options that shape the layout (`[maxShardBytes, metadata]`): every rank must pass the same. */
  layout: string;
  error?: string;
  entries: Decl[];
}

/**
 * Merge the ranks' tensor orders (each a subsequence of the model's state dict order; a rank that
 * holds no row of a tensor may lack it) into one order consistent with all of them; ties go to the
 * name seen first (lowest rank, then position). Deterministic: every rank computes the same.
 */
function mergeOrders(lists: string[][]): string[] {
  const first = new Map<string, number>();
  const succ = new Map<string, Set<string>>();
  const indeg = new Map<string, number>();
  let seq = 0;
  for (const list of lists) {
    list.forEach((n, i) => {
      if (!first.has(n)) {
        first.set(n, seq++);
        succ.set(n, new Set());
        indeg.set(n, 0);
      }
      const prev = list[i - 1];
      if (prev !== undefined && !succ.get(prev)!.has(n)) {
        succ.get(prev)!.add(n);
        indeg.set(n, indeg.get(n)! + 1);
      }
    });
  }
  const out: string[] = [];
  const done = new Set<string>();
  const names = [...first.keys()]; // in first-seen order
  while (out.length < names.length) {
    let pick = names.find((n) => !done.has(n) && indeg.get(n) === 0);
    // Orders that contradict each other: take the earliest-seen remaining name.
    pick ??= names.find((n) => !done.has(n))!;
    done.add(pick);
    out.push(pick);
    for (const m of succ.get(pick)!) indeg.set(m, indeg.get(m)! - 1);
  }
  return out;
}

interface Placed {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  rowBytes: number;
  file: string;
  /** Absolute file position of the tensor's data. */
  position: number;
  /** Which rank writes which rows: [rank, rowStart, rows]. */
  writers: [number, number, number][];
}

/** Check every rank's declarations against each other; the tensors by name, with the rows each rank writes. */
function agree(
  where: string,
  msgs: Message[],
): { order: string[]; tensors: Map<string, Omit<Placed, 'file' | 'position'>> } {
  const errors = msgs.flatMap((m, r) => (m.error ? [`rank ${r}: ${m.error}`] : []));
  if (errors.length) throw new Error(`${where}: ${errors.join('; ')}`);
  const odd = msgs.findIndex((m) => m.layout !== msgs[0]!.layout);
  if (odd > 0) {
    throw new Error(
      `${where}: rank ${odd} passed maxShardBytes and metadata ${msgs[odd]!.layout} but rank 0 ${msgs[0]!.layout} ` +
        '(every rank must pass the same)',
    );
  }
  const decls = new Map<string, { rank: number; d: Decl }[]>();
  msgs.forEach((m, rank) => {
    for (const d of m.entries) {
      const list = decls.get(d[0]) ?? [];
      list.push({ rank, d });
      decls.set(d[0], list);
    }
  });
  const tensors = new Map<string, Omit<Placed, 'file' | 'position'>>();
  for (const [name, list] of decls) {
    const a = list[0]!;
    const [, dtype, shape] = a.d;
    for (const b of list) {
      if (b.d[1] !== dtype || b.d[2].join(',') !== shape.join(',')) {
        throw new Error(
          `${where}: tensor '${name}': rank ${b.rank} describes ${b.d[1]} [${b.d[2]}] but rank ${a.rank} ` +
            `${dtype} [${shape}] (every rank must give the same global shape and dtype)`,
        );
      }
    }
    const repl = list.filter((x) => x.d[5] === 1);
    const rows = list.filter((x) => x.d[5] === 0);
    if (repl.length && rows.length) {
      throw new Error(
        `${where}: tensor '${name}' is a whole (replicated) tensor on rank ${repl[0]!.rank} ` +
          `but a row block on rank ${rows[0]!.rank}`,
      );
    }
    const numel = shape.reduce((x, y) => x * y, 1);
    const elem = { F64: 8, F32: 4, F16: 2, BF16: 2, I32: 4, U8: 1, BOOL: 1 }[dtype] ?? 0;
    if (!elem) throw new Error(`${where}: tensor '${name}': dtype ${dtype} cannot be exported in parallel`);
    const bytes = numel * elem;
    const globalRows = shape.length ? shape[0]! : 1;
    const rowBytes = globalRows ? bytes / globalRows : 0;
    let writers: [number, number, number][];
    if (repl.length) writers = [[repl[0]!.rank, 0, globalRows]];
    else {
      const blocks = rows.filter((x) => x.d[4] > 0).sort((x, y) => x.d[3] - y.d[3]);
      let next = 0;
      let prev: (typeof blocks)[number] | undefined;
      for (const x of blocks) {
        const [, , , start, n] = x.d;
        if (start < next) {
          throw new Error(
            `${where}: tensor '${name}' [${shape}]: rows [${start}, ${start + n}) of rank ${x.rank} overlap ` +
              `rows [${prev!.d[3]}, ${prev!.d[3] + prev!.d[4]}) of rank ${prev!.rank}`,
          );
        }
        if (start > next) {
          throw new Error(`${where}: tensor '${name}' [${shape}]: rows [${next}, ${start}) are held by no rank`);
        }
        next = start + n;
        prev = x;
      }
      if (next !== globalRows) {
        throw new Error(`${where}: tensor '${name}' [${shape}]: rows [${next}, ${globalRows}) are held by no rank`);
      }
      writers = blocks.map((x) => [x.rank, x.d[3], x.d[4]]);
    }
    tensors.set(name, { name, dtype, shape, bytes, rowBytes, writers });
  }
  return { order: mergeOrders(msgs.map((m) => m.entries.map((d) => d[0]))), tensors };
}

function fsyncDir(path: string): void {
  try {
    const fd = openSync(path, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

/**
 * Export a sharded model as a Hugging Face checkpoint directory, every rank writing only its own
 * rows, in parallel. Every rank calls it with its tensors: row blocks ({@link dim0Shard},
 * parallel-fsdp's `shardedStateDict` entries) or whole tensors (written by the lowest rank that
 * has them). A rank holding no row of a tensor may leave it out.
 *
 * The ranks exchange what they hold (global shape, dtype, rows) through the coordinator and
 * check it agrees (a shape that disagrees, overlapping or missing rows: an error naming the tensor
 * and the rank, on every rank). The file layout (which tensors go in which
 * `model-0000i-of-0000n.safetensors`, headers, offsets) is then computed identically on every rank,
 * exactly as {@link writeSafetensorsDir} computes it for the gathered tensors in the same order.
 * Rank 0 creates the files at full size in a temporary folder next to `dir` and writes the
 * headers; each rank writes its rows' byte ranges with positional writes and fsyncs; rank 0
 * writes `model.safetensors.index.json` and commits by renaming the folder to `dir` (other files
 * already in `dir`, such as `config.json`, are carried over). The result is byte for byte what a
 * single process's `writeSafetensorsDir(dir, gathered, opts)` writes. A crash or an error on
 * any rank leaves `dir` as it was (the temporary folder is removed by rank 0 when it sees the error).
 */
export function writeSafetensorsDirParallel(
  dir: string,
  tensors: Record<string, ParallelTensor> | Map<string, ParallelTensor>,
  opts: ParallelWriteOptions = {},
): ParallelWriteResult {
  const coord = defaultCoordinator(opts.coordinator);
  const rank = coord.rank;
  const where = `parallel safetensors export ${dir} (rank ${rank} of ${coord.size})`;
  const gather =
    coord.allGather?.bind(coord) ??
    (coord.size === 1
      ? (s: string) => [s]
      : () => {
          throw new Error(
            `${where}: the coordinator has no allGather (use storeCoordinator or processGroupCoordinator)`,
          );
        });
  const opener = opts.opener ?? nodeFileWriteOpener;
  const target = resolve(dir);
  const parent = dirname(target);

  // 1. Exchange what every rank holds (local errors travel too, so no rank waits for nothing).
  const mine = new Map<string, RowBlock>();
  let limit = 0;
  let meta: Record<string, string> = {};
  const msg: Message = { entries: [], layout: '' };
  try {
    limit = parseSize(opts.maxShardBytes ?? '5GB');
    meta = checkMetadata(opts.metadata ?? { format: 'pt' }, where);
    msg.layout = JSON.stringify([limit, meta]);
    const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
    for (const [name, leaf] of entries) {
      const b = rowBlockOf(name, leaf, `rank ${rank}`);
      mine.set(name, b);
      msg.entries.push([name, b.dtype, b.shape, b.rowStart, b.rows, b.replicated ? 1 : 0]);
    }
    if (existsSync(target) && !statSync(target).isDirectory()) throw new Error(`${target} exists and is not a folder`);
  } catch (e) {
    msg.error = (e as Error).message;
  }
  if (rank === 0) msg.tmp = join(parent, `.${basename(target)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  const msgs = gather(JSON.stringify(msg)).map((s) => JSON.parse(s) as Message);
  const tmp = msgs[0]!.tmp!;

  // 2. The layout, the same on every rank.
  const { order, tensors: all } = agree(where, msgs);
  const items = order.map((n) => all.get(n)!);
  const groups = packShards(items, limit);
  const fileNames = groups.length === 1 ? [SINGLE_FILE] : groups.map((_, i) => shardFileName(i, groups.length));
  const placed = new Map<string, Placed>();
  const heads: Uint8Array[] = [];
  const sizes: number[] = [];
  groups.forEach((group, f) => {
    const {
      head,
      order: inFile,
      offsets,
    } = layout(
      group.map((t) => ({ ...t, dtype: t.dtype as never })),
      meta,
    );
    heads.push(head);
    sizes.push(head.length + group.reduce((a, t) => a + t.bytes, 0));
    inFile.forEach((t, i) => {
      placed.set(t.name, { ...all.get(t.name)!, file: fileNames[f]!, position: head.length + offsets[i]! });
    });
  });
  const totalSize = items.reduce((a, t) => a + t.bytes, 0);

  // Each step runs on its ranks, then every rank learns whether any failed (also a barrier).
  const step = (label: string, fn: () => void) => {
    let err: string | null = null;
    try {
      fn();
    } catch (e) {
      err = (e as Error).message;
    }
    const st = gather(JSON.stringify(err)).map((s) => JSON.parse(s) as string | null);
    const bad = st.flatMap((e, r) => (e ? [`rank ${r}: ${e}`] : []));
    if (bad.length) throw new Error(`${where}: ${label} failed on ${bad.join('; ')}`);
  };
  let bytesWritten = 0;
  try {
    // 3. Rank 0 creates the files at full size and writes the headers.
    step('creating the files', () => {
      if (rank !== 0) return;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(parent, { recursive: true });
      mkdirSync(tmp);
      fileNames.forEach((name, f) => {
        const file = opener(join(tmp, name), { create: true });
        try {
          writeFully(file, heads[f]!, 0);
          file.truncate(sizes[f]!);
          file.sync();
        } finally {
          file.close();
        }
      });
    });
    // 4. Every rank writes its rows' byte ranges.
    step('writing the rows', () => {
      const open = new Map<string, WritableFile>();
      let writes = 0;
      try {
        for (const [name, b] of mine) {
          const p = placed.get(name)!;
          const w = p.writers.find(([r, start]) => r === rank && start === b.rowStart);
          if (!w || !b.rows || !b.local) continue;
          const data = tensorBytes(b.local, `${where}: tensor '${name}'`);
          const expect = w[2] * p.rowBytes;
          if (data.length !== expect) {
            throw new Error(`tensor '${name}': ${data.length} bytes for ${w[2]} rows (expected ${expect})`);
          }
          let file = open.get(p.file);
          if (!file) {
            file = opener(join(tmp, p.file), { create: false });
            open.set(p.file, file);
          }
          writeFully(file, data, p.position + b.rowStart * p.rowBytes);
          bytesWritten += data.length;
          if (opts.crashAfterWrites !== undefined && ++writes >= opts.crashAfterWrites) {
            process.kill(process.pid, 'SIGKILL');
          }
        }
        for (const f of open.values()) f.sync();
      } finally {
        for (const f of open.values()) f.close();
      }
    });
    // 5. Rank 0 writes the index and commits.
    step('committing', () => {
      if (rank !== 0) return;
      if (fileNames.length > 1) {
        const weightMap = items.map((t) => [t.name, placed.get(t.name)!.file] as [string, string]);
        writeAtomically(join(tmp, INDEX_FILE), [new TextEncoder().encode(indexText(weightMap, totalSize))]);
      }
      fsyncDir(tmp);
      if (existsSync(target)) {
        for (const e of readdirSync(target)) {
          if (e === SINGLE_FILE || e === INDEX_FILE || SHARD_RE.test(e) || existsSync(join(tmp, e))) continue;
          cpSync(join(target, e), join(tmp, e), { recursive: true, preserveTimestamps: true });
        }
        fsyncDir(tmp);
        const old = join(parent, `.${basename(target)}.old-${process.pid}-${Date.now().toString(36)}`);
        renameSync(target, old);
        renameSync(tmp, target); // the commit point
        fsyncDir(parent);
        rmSync(old, { recursive: true, force: true });
      } else {
        renameSync(tmp, target); // the commit point
      }
      fsyncDir(parent);
    });
  } catch (e) {
    if (rank === 0 && existsSync(tmp)) rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const files = fileNames.map((f) => join(dir, f));
  if (fileNames.length > 1) files.push(join(dir, INDEX_FILE));
  return { files, totalSize, bytesWritten };
}
