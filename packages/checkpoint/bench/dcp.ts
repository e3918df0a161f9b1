// dcp save/load throughput against the disk's raw write+fsync / read speed measured in the same
// run, and the time training is blocked by an async save vs a synchronous one (one process).
// Run: (cd packages/core && pnpm build) && (cd packages/checkpoint && pnpm build) && pnpm bench:ckpt [MB] [repeats] [--reserve]
// --reserve: call reserveSaveBuffer() at start-up, so that the first async save finds its host buffer mapped.
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c, loadCheckpoint, reserveSaveBuffer, saveCheckpoint, waitForPendingSave } from '@omnitrain/checkpoint';
import { Tensor } from '@omnitrain/core';

const mb = Number(process.argv[2] ?? 256);
const repeats = Number(process.argv[3] ?? 3);
const reserve = process.argv.includes('--reserve');
const dir = mkdtempSync(join(tmpdir(), 'dcp-bench-'));
const rows = (mb * 1024 * 1024) / 4 / 1024;
const parts = 8;
const ws = Array.from({ length: parts }, () => Tensor.empty([rows / parts, 1024], 'float32', 'cpu'));
for (const [i, w] of ws.entries()) (w.raw() as Float32Array).fill(i + 0.5);
const bytes = ws.reduce((a, w) => a + w.byteLength, 0);
if (reserve) reserveSaveBuffer(bytes + 64 * parts);
const time = (f: () => void) => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};
const gbps = (n: number, ms: number) => (n / 1e9 / (ms / 1e3)).toFixed(2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Raw disk: write + fsync, then read back, of the same bytes.
const raw = join(dir, 'raw.bin');
const buf = new Uint8Array(ws[0]!.storage.handle as ArrayBuffer);
const rawWrite = () =>
  time(() => {
    const fd = openSync(raw, 'w');
    for (let i = 0; i < parts; i++) writeSync(fd, buf);
    fsyncSync(fd);
    closeSync(fd);
  });
const rawRead = () =>
  time(() => {
    const fd = openSync(raw, 'r');
    const dst = new Uint8Array(buf.length);
    for (let i = 0; i < parts; i++) readSync(fd, dst, 0, dst.length, i * dst.length);
    closeSync(fd);
  });
const crcMs = time(() => crc32c(buf));

const state = { model: Object.fromEntries(ws.map((w, i) => [`w${i}`, w])), step: 1 };
// Targets are touched first, as a model's parameters are before a resume (no first-touch page faults in the timing).
const targets = {
  model: Object.fromEntries(
    ws.map((w, i) => {
      const t = Tensor.empty(w.shape, 'float32', 'cpu');
      (t.raw() as Float32Array).fill(0);
      return [`w${i}`, t];
    }),
  ),
};
let step = 0;
const samples = {
  rawW: [] as number[],
  rawR: [] as number[],
  sync: [] as number[],
  load: [] as number[],
  loadInPlace: [] as number[],
};
const asyncRuns: { blocked: number; total: number; sync: number }[] = [];
for (let r = 0; r < repeats; r++) {
  // Interleaved, so that the machine's load hits every measure alike.
  samples.rawW.push(rawWrite());
  samples.rawR.push(rawRead());
  const sync = time(() => saveCheckpoint(dir, ++step, state, { keep: 1000 }));
  samples.sync.push(sync);
  let blocked = 0;
  const total = time(() => {
    blocked = saveCheckpoint(dir, ++step, state, { async: true, keep: 1000 }).blockedMs;
    waitForPendingSave();
  });
  asyncRuns.push({ blocked, total, sync });
  samples.load.push(time(() => loadCheckpoint(join(dir, `step-${step}`), targets)));
  samples.loadInPlace.push(time(() => loadCheckpoint(join(dir, `step-${step}`), targets, { inPlace: true })));

  // Old checkpoints are removed outside the timed parts (deleting files is not part of the raw baseline).
  rmSync(join(dir, `step-${step - 1}`), { recursive: true });
  rmSync(join(dir, `step-${step}`), { recursive: true });
}
rmSync(dir, { recursive: true, force: true });

const rawW = median(samples.rawW);
const rawR = median(samples.rawR);
const syncMs = median(samples.sync);
const loadMs = median(samples.load);
const first = asyncRuns[0]!;
const steady = asyncRuns.slice(1);
const ratios = steady.map((a) => a.blocked / a.sync);
const rows_: [string, number, string][] = [
  ['raw write + fsync', rawW, ''],
  ['raw read', rawR, ''],
  ['crc32c (one part)', crcMs, `${gbps(buf.length, crcMs)} GB/s`],
  ['dcp save, sync', syncMs, `${((rawW / syncMs) * 100).toFixed(0)}% of raw write`],
  [
    'dcp save, async, 1st: blocked',
    first.blocked,
    `${((first.blocked / first.sync) * 100).toFixed(0)}% of the sync save (${reserve ? 'buffer reserved at start-up' : 'host buffer allocated'})`,
  ],
];
if (steady.length) {
  rows_.push([
    'dcp save, async, later: blocked',
    median(steady.map((a) => a.blocked)),
    `${ratios.map((x) => `${(x * 100).toFixed(1)}%`).join(', ')} of the sync save (each run)`,
  ]);
}
rows_.push(['dcp save, async: total', median(asyncRuns.map((a) => a.total)), '']);
rows_.push([
  'dcp load (staged + verified, then copied)',
  loadMs,
  `${((rawR / loadMs) * 100).toFixed(0)}% of raw read (each run: ${samples.load.map((x) => `${((rawR / x) * 100).toFixed(0)}%`).join(', ')})`,
]);

const inPlaceMs = median(samples.loadInPlace);
rows_.push(['dcp load, inPlace (verify)', inPlaceMs, `${((rawR / inPlaceMs) * 100).toFixed(0)}% of raw read`]);
console.log(
  `| ${mb} MB in ${parts} float32 tensors, median of ${repeats} | time | GB/s | |\n| --- | --- | --- | --- |`,
);
for (const [name, ms, note] of rows_) {
  const n = name.startsWith('crc') ? buf.length : bytes;
  console.log(`| ${name} | ${ms.toFixed(0)} ms | ${gbps(n, ms)} | ${note} |`);
}
