import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Coordinator,
  dim0Shard,
  hfSafetensorsFormat,
  openSafetensorsDir,
  readSafetensorsDirParallel,
  type SafetensorsSource,
  writeSafetensorsDir,
  writeSafetensorsDirParallel,
} from '@omnitrain/checkpoint';
import { empty, type ProcessGroup, TcpStoreServer, type Tensor } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleChild } from './dcp-helpers/bundle.js';
import { block, evenSplit, shardOf, unevenSplit } from './dcp-helpers/data.js';
import { HF_SPECS } from './dcp-helpers/hf-data.js';
import { spawnChild } from './dcp-helpers/spawn.js';

// Two and four processes export their uneven row blocks of a small model (f32 and bf16; a tensor
// with fewer rows than ranks, so one rank holds none of it; one whole replicated tensor) as a
// Hugging Face checkpoint in parallel, then import it back under the even split. The files must be
// byte for byte those a single process writes for the full tensors, and each rank must have
// written and read exactly the byte ranges of its own rows.

type Write = [string, number, number, boolean];
type Read = [string, number, number];
interface Result {
  writes: Write[];
  reads: Read[];
  bad: string[];
  bytesRead: number;
}

const full = (salt = 0) =>
  new Map<string, Tensor>(
    HF_SPECS.map((s) => [
      s.name,
      block(
        s,
        s.shape.map(() => 0),
        s.shape,
        salt,
      ),
    ]),
  );

/** Every file of a folder, by name. */
const filesOf = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f))]),
  );

/** [file, position, length] of the bytes of rows [start, start + n) of `name` in the reference layout. */
function rowRange(src: SafetensorsSource, name: string, start: number, n: number): Read {
  const info = src.info(name);
  const rowBytes = info.shape.length ? (info.byteRange[1] - info.byteRange[0]) / info.shape[0]! : 0;
  return [info.file.split('/').at(-1)!, info.byteRange[0] + start * rowBytes, n * rowBytes];
}

const sortRanges = <T extends (string | number | boolean)[]>(l: T[]) =>
  [...l].sort((a, b) => (a[0] === b[0] ? (a[1] as number) - (b[1] as number) : a[0]! < b[0]! ? -1 : 1));

describe('parallel Hugging Face export and import', () => {
  let script: string;
  let server: TcpStoreServer;
  const secret = `hf-${process.pid}`;
  const roots: string[] = [];
  const fresh = () => {
    const d = mkdtempSync(join(tmpdir(), 'hf-par-'));
    roots.push(d);
    return d;
  };
  beforeAll(async () => {
    script = await bundleChild();
    server = await TcpStoreServer.start({ port: 0, secret });
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
    if (script) rmSync(join(script, '..'), { recursive: true, force: true });
  });

  let runs = 0;
  async function run(size: number, out: string, env: Record<string, string> = {}) {
    const id = String(++runs);
    const kids = Array.from({ length: size }, (_, rank) =>
      spawnChild(script, {
        SCENARIO: 'hf-export',
        RANK: String(rank),
        WORLD_SIZE: String(size),
        STORE_PORT: String(server.port),
        STORE_SECRET: secret,
        OUT: out,
        RUN: id,
        ...env,
      }),
    );
    const exits = await Promise.all(kids.map((k) => k.done));
    return kids.map((k, r) => ({
      exit: exits[r]!,
      output: k.output,
      result: (() => {
        const line = k.output.split('\n').find((l) => l.startsWith('RESULT '));
        return line ? (JSON.parse(line.slice(7)) as Result) : null;
      })(),
    }));
  }

  for (const [size, maxShard] of [
    [2, 700],
    [4, 700],
    [4, 5e9],
  ] as const) {
    it(`${size} ranks, ${maxShard < 1e9 ? 'several files' : 'one file'}: bitwise a single-process save; each rank touches only its rows`, async () => {
      const root = fresh();
      const out = join(root, 'out');
      const ref = join(root, 'ref');
      // With 2 ranks each process first exports other values, then exports again through a new
      // coordinator with the same store prefix (as a trainer exporting every N steps does).
      const res = await run(size, out, { MAX_SHARD: String(maxShard), TWICE: size === 2 ? '1' : '' });
      for (const [r, x] of res.entries()) expect(x.exit.code, `rank ${r}:\n${x.output}`).toBe(0);
      writeSafetensorsDir(ref, full(), { maxShardBytes: maxShard });
      const want = filesOf(ref);
      if (maxShard < 1e9) expect(Object.keys(want).length).toBeGreaterThanOrEqual(4); // >= 3 shards + index
      expect(Object.keys(filesOf(out))).toEqual(Object.keys(want));
      for (const [f, bytes] of Object.entries(filesOf(out))) expect(bytes.equals(want[f]!), f).toBe(true);
      expect(readdirSync(root).sort()).toEqual(['out', 'ref']); // no temporary folder left

      const src = openSafetensorsDir(ref);
      try {
        const headerEnd = new Map<string, number>();
        for (const n of src.keys()) {
          const info = src.info(n);
          const f = info.file.split('/').at(-1)!;
          headerEnd.set(f, Math.min(headerEnd.get(f) ?? Number.POSITIVE_INFINITY, info.byteRange[0]));
        }
        let dataWritten = 0;
        res.forEach(({ result }, rank) => {
          expect(result!.bad, `rank ${rank} imported wrong values`).toEqual([]);
          // Writes: exactly the rows of its blocks (export split); rank 0 also wrote whole tensors and headers.
          const expectW: Read[] = [];
          const expectR: Read[] = [];
          for (const s of HF_SPECS) {
            if (s.replicated) {
              if (rank === 0) expectW.push(rowRange(src, s.name, 0, s.shape[0]!));
              expectR.push(rowRange(src, s.name, 0, s.shape[0]!));
              continue;
            }
            const w = shardOf(s, size, rank, unevenSplit);
            if (w.lengths[0]) expectW.push(rowRange(src, s.name, w.offsets[0]!, w.lengths[0]!));
            const r = shardOf(s, size, rank, evenSplit);
            if (r.lengths[0]) expectR.push(rowRange(src, s.name, r.offsets[0]!, r.lengths[0]!));
          }
          const data = result!.writes.filter((w) => !w[3]).map((w) => w.slice(0, 3) as Read);
          expect(sortRanges(data), `rank ${rank} data writes`).toEqual(sortRanges(expectW));
          dataWritten += data.reduce((a, w) => a + w[2], 0);
          const created = result!.writes.filter((w) => w[3]);
          if (rank === 0) {
            // Only the headers: each file's bytes before its first tensor.
            expect(created.map((w) => [w[0], w[1], w[2]])).toEqual(
              [...headerEnd.entries()].sort().map(([f, end]) => [f, 0, end]),
            );
          } else expect(created).toEqual([]);
          // Reads: the headers (from byte 0 up to the data), then only its rows (import split).
          const dataReads = result!.reads.filter(([f, pos]) => pos >= headerEnd.get(f)!);
          expect(sortRanges(dataReads), `rank ${rank} data reads`).toEqual(sortRanges(expectR));
          expect(result!.bytesRead).toBe(expectR.reduce((a, r) => a + r[2], 0));
        });
        const total = HF_SPECS.reduce((a, s) => a + (src.info(s.name).byteRange[1] - src.info(s.name).byteRange[0]), 0);
        expect(dataWritten).toBe(total); // every byte written exactly once over all ranks
      } finally {
        src.close();
      }
    }, 60_000);
  }

  it('a shard that disagrees with the global shape fails on every rank, naming the tensor and the rank', async () => {
    const root = fresh();
    const out = join(root, 'out');
    const res = await run(2, out, { BAD: 'shape' });
    for (const x of res) {
      expect(x.exit.code).toBe(3);
      expect(x.output).toMatch(/tensor 'lm_head\.weight': rank 1 describes F32 \[38,8\] but rank 0 F32 \[37,8\]/);
    }
    expect(readdirSync(root)).toEqual([]);
  }, 60_000);

  it('a rank killed mid-export leaves the previous export in place and no temporary folder', async () => {
    const root = fresh();
    const out = join(root, 'out');
    writeSafetensorsDir(out, full(1), { maxShardBytes: 700 });
    writeFileSync(join(out, 'config.json'), '{"model_type":"x"}');
    const before = filesOf(out);
    const res = await run(2, out, { MAX_SHARD: '700', CRASH_RANK: '1', TIMEOUT_MS: '3000' });
    expect(res[1]!.exit.signal).toBe('SIGKILL');
    expect(res[0]!.exit.code).toBe(3);
    expect(res[0]!.output).toMatch(/ERROR/);
    const after = filesOf(out);
    expect(Object.keys(after)).toEqual(Object.keys(before));
    for (const [f, b] of Object.entries(after)) expect(b.equals(before[f]!), f).toBe(true);
    expect(readdirSync(root)).toEqual(['out']);
    // A later export to the same folder replaces the weights and keeps config.json.
    const again = await run(2, out, { MAX_SHARD: '5000' });
    for (const x of again) expect(x.exit.code, x.output).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(readFileSync(join(out, 'config.json'), 'utf8')).toBe('{"model_type":"x"}');
    expect(readdirSync(root)).toEqual(['out']);
  }, 60_000);
});

describe('parallel Hugging Face export: one process', () => {
  const root = mkdtempSync(join(tmpdir(), 'hf-par1-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('row blocks that leave rows uncovered, or a block that does not match the global shape, are errors', () => {
    const t = empty([2, 3], { dtype: 'float32' });
    expect(() => writeSafetensorsDirParallel(join(root, 'a'), { w: dim0Shard(t, 5, 0) })).toThrow(
      /tensor 'w' \[5,3\]: rows \[2, 5\) are held by no rank/,
    );
    const rows = { kind: 'fsdp-rows' as const, local: t, globalShape: [4, 4], rowStart: 0 };
    expect(() => writeSafetensorsDirParallel(join(root, 'a'), { w: rows })).toThrow(
      /tensor 'w' on rank 0: local block \[2,3\] does not match the global shape \[4,4\]/,
    );
    expect(existsSync(join(root, 'a'))).toBe(false);
    expect(readdirSync(root)).toEqual([]);
    t.dispose();
  });

  it('import: a target whose global shape disagrees with the file names the tensor and the rank', () => {
    const dir = join(root, 'b');
    writeSafetensorsDirParallel(dir, full());
    const t = empty([2, 8], { dtype: 'float32' });
    expect(() => readSafetensorsDirParallel(dir, { 'lm_head.weight': dim0Shard(t, 36, 0) }, { rank: 3 })).toThrow(
      /tensor 'lm_head\.weight' is \[37,8\] but rank 3's target describes a global shape \[36,8\]/,
    );
    // Reading into another dtype converts (bf16 file -> f32 rows).
    const e = empty([5, 8], { dtype: 'float32' });
    readSafetensorsDirParallel(dir, { 'model.embed_tokens.weight': dim0Shard(e, 37, 30) });
    const spec = HF_SPECS[0]!;
    const want = block(spec, [30, 0], [5, 8]);
    expect(Array.from(e.raw() as Float32Array)).toEqual(Array.from(want.to('float32').raw() as Float32Array));
    t.dispose();
    e.dispose();
  });

  it('exchanges through a process group (allGather of int32 words) as well', () => {
    const done = { wait() {}, isCompleted: () => true };
    let gathers = 0;
    const pg = {
      backend: 'fake',
      name: 'world',
      rank: 0,
      size: 1,
      ranks: [0],
      allGather(out: Tensor, input: Tensor) {
        gathers++;
        (out.raw() as Int32Array).set(input.raw() as Int32Array);
        return done;
      },
      barrier: () => done,
    } as unknown as ProcessGroup;
    const a = join(root, 'pg');
    const b = join(root, 'pg-ref');
    writeSafetensorsDirParallel(a, full(), { coordinator: pg, maxShardBytes: 1000 });
    writeSafetensorsDir(b, full(), { maxShardBytes: 1000 });
    expect(gathers).toBeGreaterThanOrEqual(8); // 2 per exchange: lengths, then the words
    expect(readdirSync(a).sort()).toEqual(readdirSync(b).sort());
    for (const f of readdirSync(b)) expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), f).toBe(true);
  });

  it('ranks passing different maxShardBytes is an error on every rank; the registry format exports the same bytes', () => {
    // Rank 1 simulated by the coordinator: the same tensors, another size limit.
    const twoRanks: Coordinator = {
      rank: 0,
      size: 2,
      barrier() {},
      allGather(text) {
        const m = JSON.parse(text);
        if (!('layout' in m)) return [text, text];
        return [text, JSON.stringify({ ...m, layout: m.layout.replace('[1000,', '[2000,'), tmp: undefined })];
      },
    };
    expect(() =>
      writeSafetensorsDirParallel(join(root, 'c'), full(), { coordinator: twoRanks, maxShardBytes: 1000 }),
    ).toThrow(/rank 1 passed maxShardBytes and metadata \[2000,.*but rank 0 \[1000,/);
    expect(existsSync(join(root, 'c'))).toBe(false);
    const a = join(root, 'fmt');
    const b = join(root, 'fmt-ref');
    hfSafetensorsFormat.saveParallel!(full(), a, { maxShardBytes: 1500 });
    writeSafetensorsDir(b, full(), { maxShardBytes: 1500 });
    expect(readdirSync(a).sort()).toEqual(readdirSync(b).sort());
    for (const f of readdirSync(b)) expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), f).toBe(true);
    const t = empty([37, 8], { dtype: 'float32' });
    expect(hfSafetensorsFormat.loadParallel!(a, { 'lm_head.weight': t }).bytesRead).toBe(37 * 8 * 4);
    expect(Buffer.from(t.raw().buffer).equals(Buffer.from(full().get('lm_head.weight')!.raw().buffer))).toBe(true);
    t.dispose();
  });
});
