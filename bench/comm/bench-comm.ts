// bench:comm — all-reduce, all-gather and reduce-scatter bus bandwidth on loopback, omnitrain's
// Gloo binding (@omnitrain/comm-gloo) side by side with torch.distributed on Gloo
// (/usr/bin/python3, Debian python3-torch), in the same run, at 2 and 4 ranks, 1 MB .. 256 MB.
// Bus bandwidth as nccl-tests defines it: allReduce algbw*2(n-1)/n, allGather and reduceScatter
// algbw*(n-1)/n, algbw = bytes of the full (gathered / reduced) tensor / time. float32, sum.
// Time per op = mean over iterations after three warm-ups, the slowest rank's, best of --rounds rounds
// that alternate omnitrain and torch (the machine may be shared). Never asserted.
//
//   pnpm bench:comm      (root script: builds core + comm-gloo, then runs this)
//   node --experimental-strip-types bench/comm/bench-comm.ts [--sizes 1,4,16,64,256] [--world 2,4] [--rounds 2] [--out bench/results]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', '..');
for (const p of ['packages/core/dist/index.js', 'packages/comm-gloo/dist/index.js']) {
  if (!existsSync(join(root, p))) {
    console.error(
      `bench-comm: ${p} is missing; build first: (cd packages/core && pnpm build) && (cd packages/comm-gloo && pnpm build)`,
    );
    process.exit(1);
  }
}
const core = await import(pathToFileURL(join(root, 'packages/core/dist/index.js')).href);
const gloo = await import(pathToFileURL(join(root, 'packages/comm-gloo/dist/index.js')).href);
const why = gloo.glooBackend.unavailableReason();
if (why) {
  console.error(`bench-comm: ${why}`);
  process.exit(1);
}

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,2,4,8,16,32,64,128,256' },
    world: { type: 'string', default: '2,4' },
    out: { type: 'string', default: join(root, 'bench/results') },
    python: { type: 'string', default: '/usr/bin/python3' },
    rounds: { type: 'string', default: '2' },
  },
});
const sizes = args.sizes!.split(',').map(Number);
const worlds = args.world!.split(',').map(Number);
const rounds = Number(args.rounds);
const OPS = ['allReduce', 'allGather', 'reduceScatter'];

type Row = { op: string; mb: number; seconds: number; variant: string };

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function run(cmd: string, argv: string[], env: Record<string, string>, tag: string): Promise<Row[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`${tag} failed (exit ${code}):\n${out.slice(-3000)}`));
      else resolve(JSON.parse(line.slice(7)).results);
    });
  });
}

/** Best (fastest) of several rounds per (op, size): the machine may be shared. */
function best(a: Map<string, Row> | null, b: Map<string, Row>): Map<string, Row> {
  if (!a) return b;
  for (const [k, r] of b) if (!a.has(k) || r.seconds < a.get(k)!.seconds) a.set(k, r);
  return a;
}

/** Slowest rank per (op, size). */
function merge(perRank: Row[][]): Map<string, Row> {
  const m = new Map<string, Row>();
  for (const rows of perRank) {
    for (const r of rows) {
      const k = `${r.op}/${r.mb}`;
      const cur = m.get(k);
      if (!cur || r.seconds > cur.seconds) m.set(k, r);
    }
  }
  return m;
}

async function omnitrain(world: number, ops: string[]): Promise<Map<string, Row>> {
  const secret = randomBytes(16).toString('hex');
  const server = await core.TcpStoreServer.start({ port: 0, secret });
  try {
    const env = (rank: number) => ({
      RANK: String(rank),
      WORLD_SIZE: String(world),
      STORE_PORT: String(server.port),
      STORE_SECRET: secret,
      BENCH_SIZES_MB: sizes.join(','),
      BENCH_OPS: ops.join(','),
    });
    const script = join(here, 'rank-omnitrain.ts');
    const flags = ['--experimental-strip-types', '--no-warnings'];
    return merge(
      await Promise.all(
        Array.from({ length: world }, (_, r) =>
          run(process.execPath, [...flags, script], env(r), `omnitrain rank ${r}`),
        ),
      ),
    );
  } finally {
    await server.close();
  }
}

async function torch(world: number): Promise<Map<string, Row>> {
  const port = await freePort();
  const env = (rank: number) => ({
    RANK: String(rank),
    WORLD_SIZE: String(world),
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    BENCH_SIZES_MB: sizes.join(','),
    BENCH_OPS: OPS.join(','),
  });
  const script = join(here, 'rank_torch.py');
  return merge(
    await Promise.all(Array.from({ length: world }, (_, r) => run(args.python!, [script], env(r), `torch rank ${r}`))),
  );
}

function busbw(op: string, world: number, mb: number, seconds: number): number {
  const algbw = (mb * 2 ** 20) / seconds / 1e9; // GB/s
  const f = op === 'allReduce' ? (2 * (world - 1)) / world : (world - 1) / world;
  return algbw * f;
}

const started = new Date().toISOString();
const table: {
  world: number;
  op: string;
  mb: number;
  omnitrain: { seconds: number; busbw: number; variant: string };
  torch: { seconds: number; busbw: number; variant: string };
  ratio: number;
  rsViaAllReduce?: { seconds: number; busbw: number };
}[] = [];
for (const world of worlds) {
  let ours: Map<string, Row> | null = null;
  let theirs: Map<string, Row> | null = null;
  // Alternate the two sides so that a change in machine load hits both alike; keep the best round.
  for (let round = 1; round <= rounds; round++) {
    console.log(`[bench:comm] world ${world}, round ${round}/${rounds}: omnitrain (comm-gloo) ...`);
    ours = best(ours, await omnitrain(world, [...OPS, 'reduceScatterViaAllReduce']));
    console.log(`[bench:comm] world ${world}, round ${round}/${rounds}: torch.distributed gloo ...`);
    theirs = best(theirs, await torch(world));
  }
  for (const op of OPS) {
    for (const mb of sizes) {
      const a = ours!.get(`${op}/${mb}`)!;
      const b = theirs!.get(`${op}/${mb}`)!;
      const row = {
        world,
        op,
        mb,
        omnitrain: { seconds: a.seconds, busbw: busbw(op, world, mb, a.seconds), variant: a.variant },
        torch: { seconds: b.seconds, busbw: busbw(op, world, mb, b.seconds), variant: b.variant },
        ratio: b.seconds / a.seconds,
        ...(op === 'reduceScatter'
          ? (() => {
              const c = ours!.get(`reduceScatterViaAllReduce/${mb}`)!;
              return { rsViaAllReduce: { seconds: c.seconds, busbw: busbw(op, world, mb, c.seconds) } };
            })()
          : {}),
      };
      table.push(row);
    }
  }
}

const f2 = (x: number) => x.toFixed(2);
const lines = [
  '# bench:comm — Gloo collectives on loopback: @omnitrain/comm-gloo vs torch.distributed (Gloo)',
  '',
  `Run ${started} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, torch from ${args.python}.`,
  `float32, sum; bus bandwidth in GB/s (nccl-tests definition); time = mean per op of the slowest rank, best of ${rounds} alternating rounds;`,
  'ratio = torch time / omnitrain time (> 1: omnitrain faster). Both sides run in the same invocation.',
  '',
  '| ranks | op | size (MB) | omnitrain busbw | torch busbw | ratio | omnitrain ms | torch ms | torch API |',
  '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ...table.map(
    (r) =>
      `| ${r.world} | ${r.op} | ${r.mb} | ${f2(r.omnitrain.busbw)} | ${f2(r.torch.busbw)} | ${f2(r.ratio)}× | ${f2(r.omnitrain.seconds * 1e3)} | ${f2(r.torch.seconds * 1e3)} | ${r.torch.variant} |`,
  ),
  '',
  '## reduceScatter: pipelined ring vs allreduce + slice (both omnitrain)',
  '',
  '| ranks | size (MB) | ring busbw | allreduce+slice busbw | ring speed-up |',
  '| ---: | ---: | ---: | ---: | ---: |',
  ...table
    .filter((r) => r.rsViaAllReduce)
    .map(
      (r) =>
        `| ${r.world} | ${r.mb} | ${f2(r.omnitrain.busbw)} | ${f2(r.rsViaAllReduce!.busbw)} | ${f2(r.rsViaAllReduce!.seconds / r.omnitrain.seconds)}× |`,
    ),
  '',
];
const md = lines.join('\n');
console.log(md);
mkdirSync(args.out!, { recursive: true });
writeFileSync(join(args.out!, 'comm-gloo.md'), md);
writeFileSync(
  join(args.out!, 'comm-gloo.json'),
  `${JSON.stringify({ started, cpus: cpus().length, node: process.version, sizesMB: sizes, worlds, rows: table }, null, 2)}\n`,
);
console.log(`[bench:comm] wrote ${join(args.out!, 'comm-gloo.md')} and comm-gloo.json`);
