// Throughput of the safetensors writer and reader on one large float32 tensor (page cache warm).
// Run: (cd packages/checkpoint && pnpm build) && node packages/checkpoint/bench/read-write.ts [MB]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensorsDir, writeSafetensorsDir } from '@omnitrain/checkpoint';
import { Tensor } from '@omnitrain/core';

const mb = Number(process.argv[2] ?? 256);
const dir = mkdtempSync(join(tmpdir(), 'ckpt-bench-'));
const rows = (mb * 1024 * 1024) / 4 / 1024;
const w = Tensor.empty([rows, 1024], 'float32', 'cpu');
(w.raw() as Float32Array).fill(1.5);
const time = (f: () => void) => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};
const gbps = (bytes: number, ms: number) => (bytes / 1e9 / (ms / 1e3)).toFixed(2);
const bytes = w.byteLength;
const tw = time(() => writeSafetensorsDir(dir, { w }, { maxShardBytes: bytes / 4 }));
const tw1 = time(() => writeSafetensorsDir(dir, { w }));
let src = openSafetensorsDir(dir);
const to = time(() => {
  src.close();
  src = openSafetensorsDir(dir);
});
const results: string[] = [];
let t: Tensor | undefined;
const tr = Math.min(...[0, 1, 2].map(() => time(() => { t?.dispose(); t = src.readTensor('w'); })));
const tb = Math.min(...[0, 1, 2].map(() => time(() => { t?.dispose(); t = src.readTensor('w', { dtype: 'bfloat16' }); })));
const tq = Math.min(...[0, 1, 2].map(() => time(() => { t?.dispose(); t = src.readRows('w', rows / 8, rows / 4); })));
t?.dispose();
src.close();
results.push(`| write ${mb} MB, 4 shards + index (fsync) | ${tw.toFixed(0)} ms | ${gbps(bytes, tw)} GB/s |`);
results.push(`| write ${mb} MB, one file (fsync) | ${tw1.toFixed(0)} ms | ${gbps(bytes, tw1)} GB/s |`);
results.push(`| open + validate header | ${to.toFixed(2)} ms | |`);
results.push(`| readTensor whole (float32) | ${tr.toFixed(0)} ms | ${gbps(bytes, tr)} GB/s |`);
results.push(`| readTensor + cast to bf16 | ${tb.toFixed(0)} ms | ${gbps(bytes, tb)} GB/s (source bytes) |`);
results.push(`| readRows 1/8 of the rows | ${tq.toFixed(1)} ms | ${gbps(bytes / 8, tq)} GB/s |`);
console.log(`| ${mb} MB float32 tensor | time | throughput |\n| --- | --- | --- |\n${results.join('\n')}`);
w.dispose();
rmSync(dir, { recursive: true, force: true });
