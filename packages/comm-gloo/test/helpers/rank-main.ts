// One rank of a multi-process test, spawned by the tests with child_process (see spawn-ranks.ts).
// Reads RANK, WORLD_SIZE, STORE_PORT, STORE_SECRET, SCENARIO; prints `RESULT <json>` at the end.

import { glooBackend } from '@omnitrain/comm-gloo';
import {
  bfloat16BitsToFloat,
  type DType,
  floatToBFloat16Bits,
  type ReduceOp,
  type Tensor,
  tensor,
  zeros,
} from '@omnitrain/core';

const rank = Number(process.env.RANK);
const n = Number(process.env.WORLD_SIZE);
const store = { host: '127.0.0.1', port: Number(process.env.STORE_PORT), secret: process.env.STORE_SECRET ?? '' };
const scenario = process.env.SCENARIO ?? 'suite';
const timeoutMs = Number(process.env.TIMEOUT_MS ?? 20000);
const checks: string[] = [];
const failures: string[] = [];

function log(s: string): void {
  process.stdout.write(`${s}\n`);
}
function check(name: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  checks.push(name);
  if (got.length !== want.length) {
    failures.push(`${name}: length ${got.length} != ${want.length}`);
    return;
  }
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!;
    const b = want[i]!;
    if (!(a === b || (Number.isNaN(a) && Number.isNaN(b)))) {
      failures.push(`${name}: [${i}] got ${a}, want ${b}`);
      return;
    }
  }
}
/** Small integers: exact in every dtype (bf16 included) and in every summation order. */
const val = (r: number, i: number) => ((r * 7 + i * 3) % 23) - 11;
const DTYPES: DType[] = ['float32', 'bfloat16', 'int32', 'float64'];
const OPS: ReduceOp[] = ['sum', 'avg', 'max', 'min'];
const mk = (len: number, dtype: DType, f: (i: number) => number, shape?: number[]) =>
  tensor(
    Array.from({ length: len }, (_, i) => f(i)),
    { dtype, shape: shape ?? [len] },
  );
function reduceRef(op: ReduceOp, xs: number[], dtype: DType): number {
  const s = xs.reduce((a, b) => a + b, 0);
  switch (op) {
    case 'sum':
      return s;
    case 'avg':
      return dtype === 'int32' ? Math.trunc(s / xs.length) : s / xs.length;
    case 'max':
      return Math.max(...xs);
    case 'min':
      return Math.min(...xs);
  }
}
const ranksArr = Array.from({ length: n }, (_, i) => i);
const values = (t: Tensor) => t.toArray();

function suite(): void {
  const world = glooBackend.create({
    store,
    prefix: 'world',
    rank,
    size: n,
    ranks: ranksArr,
    name: 'world',
    timeoutMs,
  });

  // allReduce: every dtype x op, odd length.
  const L = 1003;
  for (const dtype of DTYPES) {
    for (const op of OPS) {
      const t = mk(L, dtype, (i) => val(rank, i));
      world.allReduce(t, op).wait();
      const want = Array.from({ length: L }, (_, i) =>
        reduceRef(
          op,
          ranksArr.map((r) => val(r, i)),
          dtype,
        ),
      );
      check(`allReduce ${op} ${dtype}`, values(t), want);
    }
  }
  // bfloat16 rounding of the reducer (2 ranks: one addition per element, order-free).
  if (n === 2) {
    const frac = (r: number, i: number) =>
      bfloat16BitsToFloat(floatToBFloat16Bits(1 + (i % 97) / 128 + r / 256 + (i % 7) / 8192));
    const t = mk(500, 'bfloat16', (i) => frac(rank, i));
    world.allReduce(t, 'sum').wait();
    const want = Array.from({ length: 500 }, (_, i) => floatToBFloat16Bits(Math.fround(frac(0, i) + frac(1, i))));
    check('allReduce sum bfloat16 rounds to nearest even', t.raw(), want);
  }
  // Large allReduce (several 1 MB segments).
  {
    const big = 700_001;
    const t = mk(big, 'float32', (i) => val(rank, i));
    world.allReduce(t, 'sum').wait();
    check(
      'allReduce sum float32 700001 elements',
      values(t),
      Array.from({ length: big }, (_, i) => ranksArr.reduce((a, r) => a + val(r, i), 0)),
    );
  }

  // allGather even and uneven.
  for (const dtype of [...DTYPES, 'float16' as DType]) {
    const input = mk(6, dtype, (i) => val(rank, i), [2, 3]);
    const out = zeros([2 * n, 3], { dtype });
    world.allGather(out, input).wait();
    check(
      `allGather even ${dtype}`,
      values(out),
      ranksArr.flatMap((r) => Array.from({ length: 6 }, (_, i) => val(r, i))),
    );
  }
  const uneven = (r: number) => [3, 0, 5, 2, 1][r % 5]!;
  {
    const counts = ranksArr.map(uneven);
    for (const dtype of DTYPES) {
      const input = mk(uneven(rank) * 3, dtype, (i) => val(rank, i), [uneven(rank), 3]);
      const out = zeros([counts.reduce((a, b) => a + b, 0), 3], { dtype });
      world.allGather(out, input, counts).wait();
      const want = ranksArr.flatMap((r) => Array.from({ length: uneven(r) * 3 }, (_, i) => val(r, i)));
      check(`allGather uneven ${dtype} counts ${counts.join(',')}`, values(out), want);
    }
  }

  // reduceScatter even (all dtypes x ops) and uneven.
  for (const dtype of DTYPES) {
    for (const op of OPS) {
      const rows = 5 * n;
      const input = mk(rows * 2, dtype, (i) => val(rank, i), [rows, 2]);
      const out = zeros([5, 2], { dtype });
      world.reduceScatter(out, input, op).wait();
      const want = Array.from({ length: 10 }, (_, k) =>
        reduceRef(
          op,
          ranksArr.map((r) => val(r, rank * 10 + k)),
          dtype,
        ),
      );
      check(`reduceScatter even ${op} ${dtype}`, values(out), want);
    }
  }
  for (const op of ['sum', 'max'] as ReduceOp[]) {
    for (const dtype of DTYPES) {
      const counts = ranksArr.map(uneven);
      const total = counts.reduce((a, b) => a + b, 0);
      const input = mk(total * 3, dtype, (i) => val(rank, i), [total, 3]);
      const out = zeros([counts[rank]!, 3], { dtype });
      world.reduceScatter(out, input, op, counts).wait();
      const off = counts.slice(0, rank).reduce((a, b) => a + b, 0) * 3;
      const want = Array.from({ length: counts[rank]! * 3 }, (_, k) =>
        reduceRef(
          op,
          ranksArr.map((r) => val(r, off + k)),
          dtype,
        ),
      );
      check(`reduceScatter uneven ${op} ${dtype} counts ${counts.join(',')}`, values(out), want);
    }
  }
  {
    // Several segments per chunk, uneven.
    const counts = ranksArr.map((r) => 300_000 + 17 * r);
    const total = counts.reduce((a, b) => a + b, 0);
    const input = mk(total, 'float32', (i) => val(rank, i), [total]);
    const out = zeros([counts[rank]!]);
    world.reduceScatter(out, input, 'sum', counts).wait();
    const off = counts.slice(0, rank).reduce((a, b) => a + b, 0);
    const want = Array.from({ length: counts[rank]! }, (_, k) => ranksArr.reduce((a, r) => a + val(r, off + k), 0));
    check('reduceScatter uneven sum float32 ~300k per rank', values(out), want);
  }

  // allToAll even and with per-rank splits.
  for (const dtype of DTYPES) {
    const input = mk(n * 2 * 3, dtype, (i) => 40 * rank + i, [n * 2, 3]);
    const out = zeros([n * 2, 3], { dtype });
    world.allToAll(out, input).wait();
    const want = ranksArr.flatMap((src) => Array.from({ length: 6 }, (_, k) => 40 * src + rank * 6 + k));
    check(`allToAll even ${dtype}`, values(out), want);
  }
  {
    const split = (src: number, dst: number) => (src + 2 * dst) % 3; // rows src sends to dst
    const inSplits = ranksArr.map((d) => split(rank, d));
    const outSplits = ranksArr.map((s) => split(s, rank));
    const rowsIn = inSplits.reduce((a, b) => a + b, 0);
    const rowsOut = outSplits.reduce((a, b) => a + b, 0);
    for (const dtype of DTYPES) {
      const input = mk(rowsIn * 2, dtype, (i) => 40 * rank + i, [rowsIn, 2]);
      const out = zeros([rowsOut, 2], { dtype });
      world.allToAll(out, input, outSplits, inSplits).wait();
      const want: number[] = [];
      for (let s = 0; s < n; s++) {
        const off = ranksArr.slice(0, rank).reduce((a, d) => a + split(s, d), 0) * 2;
        for (let k = 0; k < split(s, rank) * 2; k++) want.push(40 * s + off + k);
      }
      check(`allToAll splits ${dtype} in ${inSplits.join(',')} out ${outSplits.join(',')}`, values(out), want);
    }
  }

  // broadcast from the last rank.
  for (const dtype of DTYPES) {
    const t = mk(77, dtype, (i) => val(rank, i));
    world.broadcast(t, n - 1).wait();
    check(
      `broadcast root ${n - 1} ${dtype}`,
      values(t),
      Array.from({ length: 77 }, (_, i) => val(n - 1, i)),
    );
  }

  // barrier.
  world.barrier().wait();
  checks.push('barrier');

  // send/recv around the ring; two tags received in the opposite order of sending.
  {
    const next = (rank + 1) % n;
    const prev = (rank - 1 + n) % n;
    const a = mk(1000, 'float32', (i) => rank * 1000 + i);
    const b = mk(10, 'int32', (i) => -rank - i);
    const ra = zeros([1000]);
    const rb = zeros([10], { dtype: 'int32' });
    const w1 = world.send(a, next, 1);
    const w2 = world.send(b, next, 2);
    const w3 = world.recv(rb, prev, 2);
    const w4 = world.recv(ra, prev, 1);
    for (const w of [w1, w2, w3, w4]) w.wait();
    check(
      'send/recv ring tag 1 float32',
      values(ra),
      Array.from({ length: 1000 }, (_, i) => prev * 1000 + i),
    );
    check(
      'send/recv ring tag 2 int32 (received first)',
      values(rb),
      Array.from({ length: 10 }, (_, i) => -prev - i),
    );
  }

  // Two groups at once, distinct prefixes, ops in flight on both.
  {
    const members = n === 2 ? [1, 0] : rank < 2 ? [0, 1] : [2, 3];
    const sub = glooBackend.create({
      store,
      prefix: `pair/${members.join(',')}`,
      rank: members.indexOf(rank),
      size: 2,
      ranks: members,
      name: 'pair',
      timeoutMs,
    });
    const x = mk(4096, 'float32', () => rank + 1);
    const y = mk(4096, 'int32', () => 10 * (rank + 1));
    const wx = world.allReduce(x, 'sum');
    const wy = sub.allReduce(y, 'max');
    const wb = world.barrier();
    wy.wait();
    wx.wait();
    wb.wait();
    const total = (n * (n + 1)) / 2;
    check(
      'two groups: world allReduce',
      values(x),
      Array.from({ length: 4096 }, () => total),
    );
    check(
      'two groups: pair allReduce max',
      values(y),
      Array.from({ length: 4096 }, () => 10 * (Math.max(...members) + 1)),
    );
    checks.push(`pair group ranks ${JSON.stringify(sub.ranks)} rank ${sub.rank}`);
    sub.destroy();
  }

  // Work handles: several in flight, completed in issue order.
  {
    const ts = [0, 1, 2].map((k) => mk(100_000, 'float32', () => rank + k));
    const ws = ts.map((t) => world.allReduce(t, 'sum'));
    ws[2]!.wait();
    const done = ws.map((w) => w.isCompleted());
    ws[0]!.wait();
    ws[1]!.wait();
    check('in-flight works complete in issue order', done.map(Number), [1, 1, 1]);
    for (let k = 0; k < 3; k++) {
      check(
        `in-flight allReduce ${k}`,
        values(ts[k]!).slice(0, 3),
        [0, 1, 2].map(() => (n * (n - 1)) / 2 + n * k),
      );
    }
  }
  world.destroy();
}

function killed(): void {
  // Rank n-1 is killed by the test while the others wait inside an allReduce.
  const world = glooBackend.create({
    store,
    prefix: 'world',
    rank,
    size: n,
    ranks: ranksArr,
    name: 'world',
    timeoutMs,
  });
  const t = mk(1 << 20, 'float32', () => 1);
  world.allReduce(t, 'sum').wait();
  if (rank === n - 1) {
    log('VICTIM_READY');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
    return;
  }
  const start = Date.now();
  const w = world.allReduce(t, 'sum');
  log('IN_COLLECTIVE');
  let error = '';
  try {
    w.wait();
  } catch (e) {
    error = (e as Error).message;
  }
  const elapsed = Date.now() - start;
  let after = '';
  try {
    world.barrier().wait();
  } catch (e) {
    after = (e as Error).message;
  }
  log(`RESULT ${JSON.stringify({ rank, error, elapsed, after })}`);
  world.destroy();
  process.exit(0);
}

try {
  if (scenario === 'killed') killed();
  else suite();
  log(`RESULT ${JSON.stringify({ rank, checks, failures })}`);
} catch (e) {
  log(`RESULT ${JSON.stringify({ rank, checks, failures: [...failures, `threw: ${(e as Error).stack}`] })}`);
}
process.exit(0);
