// Train a tiny Qwen2-style model (from @omnitrain/models, Hugging Face layout) on the bytes of
// the Shakespeare excerpt that ships with the repository, then generate with the KV cache and
// save/reload it as a Hugging Face checkpoint directory.
//
//   node --experimental-strip-types train.ts [--steps 300] [--batch 8] [--seq 64] [--lr 3e-3] [--out DIR]
//                                            [--reference-kernels]
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Generator, manualSeed, memoryStats, noGrad, optim, type Tensor, tensor, tidy } from '@omnitrain/core';
import { createModel, fromPretrained, generate, saveToPretrained } from '@omnitrain/models';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '300' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '64' },
    lr: { type: 'string', default: '3e-3' },
    seed: { type: 'string', default: '0' },
    data: { type: 'string' },
    out: { type: 'string' },
    'reference-kernels': { type: 'boolean', default: false },
  },
});

// Native CPU kernels when they built (and were not turned off); core's reference kernels otherwise.
if (!args['reference-kernels']) {
  try {
    const native = await import('@omnitrain/kernels-cpu');
    const status = native.nativeStatus();
    if (status.available) (await import('@omnitrain/core')).defaultRegistry().use(native.plugin);
    console.log(status.message);
  } catch (e) {
    console.log(`kernels: core reference (@omnitrain/kernels-cpu not loadable: ${(e as Error).message})`);
  }
}
const steps = Number(args.steps);
const batch = Number(args.batch);
const seq = Number(args.seq);
for (const [k, v] of Object.entries({ steps, batch, seq, lr: Number(args.lr) })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number, got '${args[k as 'steps']}'`);
}

// Byte-level ids 0..255: no tokenizer needed.
const here = dirname(fileURLToPath(import.meta.url));
const bytes = readFileSync(args.data ?? join(here, '..', 'data', 'tiny-shakespeare.txt'));
const all = Int32Array.from(bytes);
const cut = Math.floor(all.length * 0.9);
const train = all.subarray(0, cut);
const val = all.subarray(cut);
const decode = (ids: number[]) => Buffer.from(ids).toString('latin1');

function sampleBatch(data: Int32Array, gen: Generator): Tensor {
  const ids = new Int32Array(batch * seq);
  const starts = gen.uint32(batch);
  for (let b = 0; b < batch; b++) {
    const start = starts[b]! % (data.length - seq);
    ids.set(data.subarray(start, start + seq), b * seq);
  }
  return tensor(ids, { dtype: 'int32', shape: [batch, seq] });
}

manualSeed(Number(args.seed));
// A Qwen2 config.json, as Hugging Face would write it.
const model = createModel({
  model_type: 'qwen2',
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 176,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 512,
  tie_word_embeddings: true,
});
// Small embeddings (Hugging Face initialises with std 0.02): with tied weights N(0, 1) would make huge logits.
noGrad(() => {
  const e = model.model.embedTokens.weight;
  const scaled = tidy(() =>
    e
      .to('float32')
      .toTypedArray()
      .map((v) => v * 0.05),
  );
  e.setData(tensor(scaled, { shape: e.shape }));
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
        const ids = sampleBatch(split, g);
        return model.forward(ids, { labels: ids }).loss!.item();
      }),
    );
  }
  return total / n;
}

console.log(
  `qwen2-tiny: ${model.numParameters().toLocaleString()} parameters, byte vocabulary 256, ` +
    `${train.length.toLocaleString()} training bytes; batch ${batch} x seq ${seq}, ${steps} steps`,
);
const startVal = evalLoss(val);
console.log(`step    0  val loss ${startVal.toFixed(4)}  (uniform guess: ${Math.log(256).toFixed(4)})`);
const t0 = performance.now();
let smoothed = Number.NaN;
for (let step = 1; step <= steps; step++) {
  const loss = tidy(() => {
    const ids = sampleBatch(train, batches);
    const l = model.forward(ids, { labels: ids }).loss!;
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
    console.log(
      `step ${String(step).padStart(4)}  loss ${smoothed.toFixed(4)}  grad norm ${norm.toFixed(3)}  ` +
        `lr ${schedule.getLastLr()[0]!.toExponential(2)}  ${((step * batch * seq) / secs).toFixed(0)} tok/s  ` +
        `live ${memoryStats().liveTensors} tensors`,
    );
  }
}
const endVal = evalLoss(val);
console.log(`val loss: ${startVal.toFixed(4)} -> ${endVal.toFixed(4)}`);

const prompts = ['ROMEO:\n', 'JULIET:\nO '].map((p) => [...Buffer.from(p, 'latin1')]);
const outs = generate(model, prompts, { maxNewTokens: 120, temperature: 0.8, topK: 40, seed: 7 });
outs.forEach((o, i) => {
  console.log(`sample ${i}:\n${decode([...prompts[i]!, ...o])}\n`);
});

// Save as a Hugging Face directory and check the reloaded model generates the same greedy text.
const outDir = args.out ?? join(tmpdir(), 'omnitrain-qwen2-tiny');
saveToPretrained(model, outDir);
const reloaded = fromPretrained(outDir);
const a = generate(model, prompts, { maxNewTokens: 40 });
const b = generate(reloaded, prompts, { maxNewTokens: 40 });
console.log(
  `saved to ${outDir}; reloaded model's greedy text ${JSON.stringify(a) === JSON.stringify(b) ? 'matches' : 'DIFFERS'}`,
);
reloaded.dispose();
if (!(endVal < startVal - 0.5) || JSON.stringify(a) !== JSON.stringify(b)) {
  console.error('the loss did not fall clearly or the reload differs; something is wrong');
  process.exit(1);
}
