// Train a tiny character-level transformer on the Shakespeare excerpt that ships with the
// repository, using @omnitrain/core alone (reference CPU kernels, one process).
//
//   node --experimental-strip-types train.ts [--steps 300] [--batch 8] [--seq 64] [--lr 3e-3]
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { manualSeed, memoryStats, mul, noGrad, optim, softmax, tensor, tidy } from '@omnitrain/core';
import { Generator, loadChars, sampleBatch } from './data.ts';
import { CharTransformer } from './model.ts';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '300' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '64' },
    lr: { type: 'string', default: '3e-3' },
    seed: { type: 'string', default: '0' },
    data: { type: 'string' },
  },
});
const steps = Number(args.steps);
const batch = Number(args.batch);
const seq = Number(args.seq);
for (const [k, v] of Object.entries({ steps, batch, seq, lr: Number(args.lr) })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number, got '${args[k as 'steps']}'`);
}

const here = dirname(fileURLToPath(import.meta.url));
const data = loadChars(args.data ?? join(here, '..', 'data', 'tiny-shakespeare.txt'));
manualSeed(Number(args.seed));
const model = new CharTransformer({
  vocabSize: data.chars.length,
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  ffn: 176,
  ropeTheta: 10000,
});
const opt = new optim.AdamW(model.parameters(), { lr: Number(args.lr), weightDecay: 0.1, betas: [0.9, 0.95] });
const schedule = optim.cosineSchedule(opt, {
  warmupSteps: Math.min(20, steps / 10),
  totalSteps: steps,
  minLrRatio: 0.1,
});
const batches = new Generator(Number(args.seed) + 1);

function evalLoss(split: Int32Array, n = 4): number {
  const g = new Generator(1234);
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += noGrad(() =>
      tidy(() => {
        const b = sampleBatch(split, batch, seq, g);
        return model.loss(b.ids, b.positions, b.labels).item();
      }),
    );
  }
  return total / n;
}

function sample(prompt: string, count: number, temperature = 0.8): string {
  const ids = data.encode(prompt);
  const g = new Generator(7);
  for (let i = 0; i < count; i++) {
    const ctx = ids.slice(-seq);
    const next = noGrad(() =>
      tidy(() => {
        const x = tensor(ctx, { dtype: 'int32', shape: [1, ctx.length] });
        const pos = tensor(
          ctx.map((_, j) => j),
          { dtype: 'int32', shape: [1, ctx.length] },
        );
        const logits = model
          .logits(x, pos)
          .reshape(ctx.length, -1)
          .slice0(ctx.length - 1);
        const p = softmax(mul(logits, 1 / temperature), -1).toTypedArray();
        const u = g.uint32(1)[0]! / 2 ** 32;
        let acc = 0;
        for (let j = 0; j < p.length; j++) {
          acc += p[j]!;
          if (u < acc) return j;
        }
        return p.length - 1;
      }),
    );
    ids.push(next);
  }
  return data.decode(ids);
}

console.log(
  `char transformer: ${model.numParameters().toLocaleString()} parameters, vocab ${data.chars.length}, ` +
    `${data.train.length.toLocaleString()} training characters; batch ${batch} x seq ${seq}, ${steps} steps`,
);
const startVal = evalLoss(data.val);
console.log(`step    0  val loss ${startVal.toFixed(4)}  (uniform guess: ${Math.log(data.chars.length).toFixed(4)})`);
const t0 = performance.now();
let smoothed = Number.NaN;
for (let step = 1; step <= steps; step++) {
  const loss = tidy(() => {
    const b = sampleBatch(data.train, batch, seq, batches);
    const l = model.loss(b.ids, b.positions, b.labels);
    l.backward();
    return l.item();
  });
  const norm = optim.clipGradNorm(model.parameters(), 1.0);
  opt.step();
  opt.zeroGrad();
  schedule.step();
  smoothed = Number.isNaN(smoothed) ? loss : 0.9 * smoothed + 0.1 * loss;
  if (step % 25 === 0 || step === steps) {
    const secs = (performance.now() - t0) / 1000;
    const tokPerSec = (step * batch * seq) / secs;
    console.log(
      `step ${String(step).padStart(4)}  loss ${smoothed.toFixed(4)}  grad norm ${norm.toFixed(3)}  ` +
        `lr ${schedule.getLastLr()[0]!.toExponential(2)}  ${tokPerSec.toFixed(0)} tok/s  ` +
        `live ${memoryStats().liveTensors} tensors`,
    );
  }
}
const endVal = evalLoss(data.val);
console.log(`val loss: ${startVal.toFixed(4)} -> ${endVal.toFixed(4)}`);
console.log(`sample:\n${sample('ROMEO:\n', 200)}`);
if (!(endVal < startVal - 0.5)) {
  console.error('the loss did not fall clearly; something is wrong');
  process.exit(1);
}
