// The thread pool's default size: the CPUs the process may run on (its affinity mask), so that `taskset` or a
// cpuset limits it; OMNITRAIN_NUM_THREADS overrides it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allowNoNative, status } from './native-available.js';

const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const taskset = ['/usr/bin/taskset', '/bin/taskset'].find((p) => existsSync(p));
const skip = (!status.available && allowNoNative) || !existsSync(entry);

/** nativeStatus().threads of a fresh Node process, started through `wrapper` (e.g. taskset) with `env` added. */
function threadsOf(wrapper: string[], env: Record<string, string>): number {
  const base = { ...process.env };
  delete base.OMNITRAIN_NUM_THREADS;
  const code = `import(${JSON.stringify(entry)}).then((k) => console.log(k.nativeStatus().threads))`;
  const [cmd, ...argv] = [...wrapper, process.execPath, '-e', code];
  const r = spawnSync(cmd!, argv, { encoding: 'utf8', env: { ...base, ...env } });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

describe('thread pool size', () => {
  it.skipIf(skip)('defaults to the CPUs the process may run on', () => {
    expect(threadsOf([], {})).toBe(availableParallelism());
  });
  it.skipIf(skip || !taskset)('follows the affinity mask (taskset -c 0 gives one thread)', () => {
    expect(threadsOf([taskset!, '-c', '0'], {})).toBe(1);
  });
  it.skipIf(skip)('OMNITRAIN_NUM_THREADS overrides it', () => {
    expect(threadsOf([], { OMNITRAIN_NUM_THREADS: '3' })).toBe(3);
  });
});

// A second JS thread (worker_threads) that finds the pool busy runs its kernels on its own thread; the packed GEMM's
// team region then has one rank and must not wait at its barrier for peers that never come. Run in a child process
// so that a deadlock fails the test (timeout) instead of hanging the runner.
const concurrentGemms = `
import { Worker } from 'node:worker_threads';
const k = await import(${JSON.stringify(entry)});
const n = k.native();
n.setGemmImpl(1);
const [M, N, K] = [256, 300, 1100]; // K > 1024: two depth blocks, one barrier each
const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.1));
const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(i * 0.1));
// The worker multiplies the same operands (copied to it); the main thread keeps multiplying until the worker has
// done 30 products, so the two overlap.
const progress = new Int32Array(new SharedArrayBuffer(4));
const worker = new Worker(
  \`import { parentPort, workerData } from 'node:worker_threads';
   const n = (await import(workerData.entry)).native();
   const { a, b, M, N, K } = workerData;
   const progress = new Int32Array(workerData.progress);
   const c = new Float32Array(M * N);
   for (let r = 0; r < 30; r++) {
     n.gemm(a, b, c, M, N, K, false, false, new Float64Array(1), new Float64Array(1), 0);
     Atomics.add(progress, 0, 1);
   }
   parentPort.postMessage(c);\`,
  { eval: true, workerData: { entry: ${JSON.stringify(entry)}, progress: progress.buffer, a, b, M, N, K } },
);
const fromWorker = new Promise((res, rej) => { worker.on('message', res); worker.on('error', rej); });
const mine = new Float32Array(M * N);
let rounds = 0;
const t0 = Date.now();
for (; Atomics.load(progress, 0) < 30 && Date.now() - t0 < 30_000; rounds++)
  n.gemm(a, b, mine, M, N, K, false, false, new Float64Array(1), new Float64Array(1), 0);
const theirs = await fromWorker;
await worker.terminate();
let diff = 0;
for (let i = 0; i < mine.length; i++) diff = Math.max(diff, Math.abs(mine[i] - theirs[i]));
console.log(diff, rounds);
`;

describe('thread pool under two JS threads', () => {
  it.skipIf(skip)('packed GEMMs from the main thread and a worker thread at once finish and agree', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', concurrentGemms], {
      encoding: 'utf8',
      env: { ...process.env, OMNITRAIN_NUM_THREADS: '2' },
      timeout: 60_000,
    });
    expect(r.error, 'child timed out: a deadlock').toBeUndefined();
    expect(r.status, r.stderr).toBe(0);
    // Same product, same code; a one-rank run and a two-rank run may split tasks differently but sum in the same order.
    const [diff, rounds] = r.stdout.trim().split(' ').map(Number);
    expect(diff).toBeLessThan(1e-3);
    expect(rounds, 'the main thread multiplied while the worker did').toBeGreaterThan(5);
  });
});
