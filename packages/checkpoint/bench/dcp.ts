// dcp save/load throughput against the disk's raw write+fsync / read speed measured in the same
// run, and the time training is blocked by an async save vs a synchronous one (one process).
// Run: (cd packages/core && pnpm build) && (cd packages/checkpoint && pnpm build) && node packages/checkpoint/bench/dcp.ts [MB]
import { closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c, loadCheckpoint, saveCheckpoint, waitForPendingSave } from '@omnitrain/checkpoint';
import { Tensor } from '@omnitrain/core';

const mb = Number(process.argv[2] ?? 256);
const dir = mkdtempSync(join(tmpdir(), 'dcp-bench-'));
const rows = (mb * 1024 * 1024) / 4 / 1024;
const parts = 8;
const ws = Array.from({ length: parts }, () => Tensor.empty([rows / parts, 1024], 'float32', 'cpu'));
for (const [i, w] of ws.entries()) (w.raw() as Float32Array).fill(i + 0.5);
const bytes = ws.reduce((a, w) => a + w.byteLength, 0);
const time = (f: () => void) => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};
const gbps = (n: number, ms: number) => (n / 1e9 / (ms / 1e3)).toFixed(2);

// Raw disk: write + fsync, then read back, of the same bytes.
const raw = join(dir, 'raw.bin');
const buf = new Uint8Array(ws[0]!.storage.handle as ArrayBuffer);
const rawWrite = time(() => {
  const fd = openSync(raw, 'w');
  for (let i = 0; i < parts; i++) writeSync(fd, buf);
  fsyncSync(fd);
  closeSync(fd);
});
const rawRead = time(() => {
  const fd = openSync(raw, 'r');
  const dst = new Uint8Array(buf.length);
  for (let i = 0; i < parts; i++) readSync(fd, dst, 0, dst.length, i * dst.length);
  closeSync(fd);
});
rmSync(raw);
const crcMs = time(() => crc32c(buf));

const state = { model: Object.fromEntries(ws.map((w, i) => [`w${i}`, w])), step: 1 };
const syncMs = time(() => saveCheckpoint(dir, 1, state));
let blocked = 0;
const asyncTotal = time(() => {
  blocked = saveCheckpoint(dir, 2, state, { async: true }).blockedMs;
  waitForPendingSave();
});
const targets = { model: Object.fromEntries(ws.map((w, i) => [`w${i}`, Tensor.empty(w.shape, 'float32', 'cpu')])) };
const loadMs = time(() => loadCheckpoint(join(dir, 'step-2'), targets));
rmSync(dir, { recursive: true, force: true });

const rows_ = [
  ['raw write + fsync', rawWrite, ''],
  ['raw read', rawRead, ''],
  ['crc32c (one part)', crcMs, `${gbps(buf.length, crcMs)} GB/s`],
  ['dcp save, sync', syncMs, `${((rawWrite / syncMs) * 100).toFixed(0)}% of raw write`],
  ['dcp save, async: blocked', blocked, `${((blocked / syncMs) * 100).toFixed(0)}% of the sync save`],
  ['dcp save, async: total', asyncTotal, ''],
  ['dcp load (verify + copy)', loadMs, `${((rawRead / loadMs) * 100).toFixed(0)}% of raw read`],
] as const;
console.log(`| ${mb} MB in ${parts} float32 tensors | time | GB/s | |\n| --- | --- | --- | --- |`);
for (const [name, ms, note] of rows_) {
  const n = name.startsWith('crc') ? buf.length : bytes;
  console.log(`| ${name} | ${ms.toFixed(0)} ms | ${gbps(n, ms)} | ${note} |`);
}
