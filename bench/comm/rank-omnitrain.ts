// One rank of the omnitrain (comm-gloo) side of bench:comm. Prints `RESULT <json>`.
// Env: RANK, WORLD_SIZE, STORE_PORT, STORE_SECRET, BENCH_SIZES_MB, BENCH_OPS. Uses the built packages.
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const core = await import(pathToFileURL(join(root, 'packages/core/dist/index.js')).href);
const gloo = await import(pathToFileURL(join(root, 'packages/comm-gloo/dist/index.js')).href);

const rank = Number(process.env.RANK);
const world = Number(process.env.WORLD_SIZE);
const sizes = process.env.BENCH_SIZES_MB!.split(',').map(Number);
const ops = process.env.BENCH_OPS!.split(',');
const store = { host: '127.0.0.1', port: Number(process.env.STORE_PORT), secret: process.env.STORE_SECRET! };
const ranks = Array.from({ length: world }, (_, i) => i);
const base = { store, rank, size: world, ranks, timeoutMs: 300_000 };
const pg = new gloo.GlooProcessGroup({ ...base, prefix: 'bench', name: 'bench' }, { rsViaAllreduce: false });
const pgAr = new gloo.GlooProcessGroup({ ...base, prefix: 'bench-ar', name: 'bench-ar' }, { rsViaAllreduce: true });

const itersFor = (bytes: number) => Math.max(3, Math.min(50, Math.floor((256 << 20) / Math.max(bytes, 1))));
const results: { op: string; mb: number; seconds: number; variant: string }[] = [];
for (const op of ops) {
  for (const mb of sizes) {
    const n = (mb << 20) / 4;
    const per = Math.floor(n / world);
    let fn: () => void;
    let variant = '';
    const tensors: any[] = [];
    if (op === 'allReduce') {
      const t = core.zeros([n]);
      tensors.push(t);
      fn = () => pg.allReduce(t, 'sum').wait();
      variant = 'allReduce (gloo ring)';
    } else if (op === 'allGather') {
      const input = core.zeros([per]);
      const out = core.zeros([per * world]);
      tensors.push(input, out);
      fn = () => pg.allGather(out, input).wait();
      variant = 'allGather (gloo allgather)';
    } else if (op === 'reduceScatter' || op === 'reduceScatterViaAllReduce') {
      const input = core.zeros([per * world]);
      const out = core.zeros([per]);
      tensors.push(input, out);
      const g = op === 'reduceScatter' ? pg : pgAr;
      fn = () => g.reduceScatter(out, input, 'sum').wait();
      variant = op === 'reduceScatter' ? 'reduceScatter (pipelined ring)' : 'reduceScatter (allreduce+slice)';
    } else continue;
    for (let i = 0; i < 3; i++) fn(); // warm-up
    pg.barrier().wait();
    const it = itersFor(mb << 20);
    const t0 = performance.now();
    for (let i = 0; i < it; i++) fn();
    const seconds = (performance.now() - t0) / 1000 / it;
    results.push({ op, mb, seconds, variant });
    for (const t of tensors) t.dispose();
  }
}
pg.barrier().wait();
process.stdout.write(`RESULT ${JSON.stringify({ rank, results })}\n`);
pgAr.destroy();
pg.destroy();
process.exit(0);
