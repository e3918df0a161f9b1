// Data-movement kernels, native (kernels-cpu) vs core's reference, side by side in one process: best of --reps
// calls per op each, alternating sides per round. Prints a markdown table (GB/s counts bytes read + written once).
//   node --experimental-strip-types bench/cpu/movement.ts [--rounds 3] [--reps 5] [--out file.md]
// Needs core and kernels-cpu dist (pnpm --filter @omnitrain/core --filter @omnitrain/kernels-cpu run build).
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { createRegistry, type Registry, type Tensor, tensor } from '../../packages/core/dist/index.js';
import { nativeStatus, plugin } from '../../packages/kernels-cpu/dist/index.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    reps: { type: 'string', default: '5' },
    out: { type: 'string' },
  },
});
const reference = createRegistry();
const ours = createRegistry().use(plugin);
if (!nativeStatus().available) throw new Error(`movement bench needs the native backend: ${nativeStatus().message}`);

let seed = 7;
function rand(shape: number[], dtype: 'float32' | 'int32' | 'bool' = 'float32', hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Array.from({ length: n }, () => {
    seed = (seed * 16807) % 2147483647;
    const u = seed / 2147483647;
    return dtype === 'int32' ? Math.floor(u * hi) : dtype === 'bool' ? Number(u > 0.5) : u - 0.5;
  });
  return tensor(v, { dtype, shape });
}

/** [name, op, inputs, attrs, bytes moved]. */
const x4 = rand([4, 512, 8, 64]);
const a = rand([4, 512, 512]);
const b = rand([4, 512, 512]);
const rows = rand([4096, 512]);
const idx = rand([8192], 'int32', 4096);
const p = rand([4096, 64]);
const gi = rand([4096, 8], 'int32', 64);
const src = rand([8192, 512]);
const si = tensor(
  Array.from({ length: 8192 * 512 }, (_, i) => ((i >> 9) * 7919) % 4096),
  { dtype: 'int32', shape: [8192, 512] },
);
const e = rand([4, 1, 512, 64]);
const big = rand([4, 1024, 1024]);
const mask = rand([4, 1024, 1024], 'bool');
const fill = rand([4 * 1024 * 1024]);
const CASES: [string, string, Tensor[], object, number][] = [
  ['permute [4,512,8,64] (0,2,1,3)', 'permute', [x4], { dims: [0, 2, 1, 3] }, x4.numel * 8],
  ['permute [4,512,512] (0,2,1) (transpose)', 'permute', [a], { dims: [0, 2, 1] }, a.numel * 8],
  ['expand [4,1,512,64] -> [4,4,512,64]', 'expand', [e], { shape: [4, 4, 512, 64] }, e.numel * 4 * 5],
  ['narrow [4,512,512] dim 2 [128, +256)', 'narrow', [a], { dim: 2, start: 128, length: 256 }, a.numel * 4],
  ['cat 2 x [4,512,512] dim 1', 'cat', [a, b], { dim: 1 }, a.numel * 16],
  ['cat 2 x [4,512,512] dim 2', 'cat', [a, b], { dim: 2 }, a.numel * 16],
  ['indexSelect 8192 rows of [4096,512]', 'indexSelect', [rows, idx], { dim: 0 }, 8192 * 512 * 8],
  ['gather [4096,64] dim 1, 8 per row', 'gather', [p, gi], { dim: 1 }, 4096 * 8 * 12],
  ['scatterAdd [4096,512] <- [8192,512] dim 0', 'scatterAdd', [rows, si, src], { dim: 0 }, 8192 * 512 * 16],
  ['maskedSelect [4,1024,1024]', 'maskedSelect', [big, mask], {}, big.numel * 7],
  ['maskedScatter [4,1024,1024]', 'maskedScatter', [big, mask, fill], {}, big.numel * 11],
];

function time(r: Registry, op: string, inputs: Tensor[], attrs: object): number {
  const k = r.kernels('cpu', op)[0]!.kernel;
  let best = Infinity;
  for (let i = 0; i < Number(args.reps); i++) {
    const t0 = performance.now();
    const out = k(inputs, attrs);
    best = Math.min(best, performance.now() - t0);
    for (const t of [out].flat()) t.dispose();
  }
  return best;
}

const load0 = loadavg();
const best = CASES.map(() => ({ ours: Infinity, reference: Infinity }));
for (let round = 0; round < Number(args.rounds); round++) {
  CASES.forEach(([, op, inputs, attrs], i) => {
    const sides = round % 2 === 0 ? (['ours', 'reference'] as const) : (['reference', 'ours'] as const);
    for (const side of sides) {
      const ms = time(side === 'ours' ? ours : reference, op, inputs, attrs);
      best[i]![side] = Math.min(best[i]![side], ms);
    }
  });
  console.error(`[movement] round ${round + 1}/${args.rounds} done`);
}
const load1 = loadavg();
const lines = [
  `# Data-movement kernels: native vs core's reference (${new Date().toISOString()})`,
  '',
  `${nativeStatus().message}. Best of ${args.reps} calls x ${args.rounds} alternating rounds per side.`,
  `Load average before/after: ${load0.map((v) => v.toFixed(2)).join(' ')} / ${load1.map((v) => v.toFixed(2)).join(' ')}.`,
  '',
  '| op | native ms | reference ms | speed-up | native GB/s |',
  '|---|---|---|---|---|',
  ...CASES.map(([name, , , , bytes], i) => {
    const { ours: o, reference: r } = best[i]!;
    return `| ${name} | ${o.toFixed(2)} | ${r.toFixed(2)} | ${(r / o).toFixed(1)}x | ${(bytes / o / 1e6).toFixed(1)} |`;
  }),
];
const md = `${lines.join('\n')}\n`;
console.log(md);
if (args.out) writeFileSync(args.out, md);
