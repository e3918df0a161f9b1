// The training loop of `omnitrain train`, written out as one script with no trainer class: copy
// it and edit what you need. One process per rank:
//
//   node packages/train/bin/omnitrain.js launch --nproc-per-node 2 examples/train-loop/train.ts [CONFIG] [--train.lr 1e-3 ...]
//
// CONFIG defaults to examples/train-demo/config.yaml; dotted overrides work as for `omnitrain train`.
// What this leaves out compared with `omnitrain train`: checkpoint resume, metrics.jsonl, NaN handling.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { plugin as gloo } from '@omnitrain/comm-gloo';
import {
  defaultRegistry,
  destroyProcessGroup,
  initDeviceMesh,
  initProcessGroup,
  manualSeed,
  noGrad,
  optim,
  tensor,
  tidy,
  worldGroup,
} from '@omnitrain/core';
import { plugin as nativeKernels, nativeStatus } from '@omnitrain/kernels-cpu';
import { createModel, saveToPretrained } from '@omnitrain/models';
import { clipGradNorm, fullStateDict, fullyShard } from '@omnitrain/parallel-fsdp';
import { batchRows, loadConfig, loadCorpusBytes, parseOverrides } from '@omnitrain/train';

// 1. Configuration: the same YAML and overrides as `omnitrain train`.
const here = dirname(fileURLToPath(import.meta.url));
const { overrides, rest } = parseOverrides(process.argv.slice(2));
const cfg = loadConfig(rest[0] ?? join(here, '..', 'train-demo', 'config.yaml'), overrides);

// 2. Plugins: native CPU kernels when they built, Gloo for the collectives.
const registry = defaultRegistry();
if (nativeStatus().available) registry.use(nativeKernels);
registry.use(gloo);

// 3. The process group (the launcher set RANK, WORLD_SIZE, MASTER_ADDR/PORT) and the mesh.
initProcessGroup({ backend: cfg.parallel.backend });
const world = worldGroup();
const mesh = initDeviceMesh({ dp_shard: world.size });
const log = (s: string) => world.rank === 0 && console.log(s);

// 4. The model: a Hugging Face config.json; small tied embeddings; FSDP on each block, then the root.
manualSeed(cfg.train.seed);
const model = createModel(cfg.model.config!);
noGrad(() => {
  const e = model.model.embedTokens.weight;
  const scaled = tidy(() =>
    Float32Array.from(e.toTypedArray() as Float32Array, (v) => v * cfg.model.init_embedding_std),
  );
  e.setData(tensor(scaled, { shape: e.shape }));
});
for (const name of model.parallelPlan().blocks)
  fullyShard(model.namedModules().find(([n]) => n === name)![1], { mesh });
fullyShard(model, { mesh });

// 5. Optimizer and schedule: built after sharding, so they step the shards.
const opt = new optim.AdamW(model.parameters(), {
  lr: cfg.train.lr,
  weightDecay: cfg.train.weight_decay,
  betas: [0.9, 0.95],
});
const schedule = optim.cosineSchedule(opt, {
  warmupSteps: cfg.train.warmup_steps,
  totalSteps: cfg.train.steps,
  minLrRatio: cfg.train.min_lr_ratio,
});

// 6. Data: bytes of the corpus; each step a global batch of random windows, this rank takes its rows.
const data = loadCorpusBytes(cfg.data.path, cfg.data.text_field);
const local = cfg.train.global_batch / mesh.size('dp');
const dpRank = mesh.localRank('dp');
const seq = cfg.data.seq_len;

// 7. The loop.
const t0 = performance.now();
for (let step = 1; step <= cfg.train.steps; step++) {
  const rows = batchRows(data, step, cfg.train.seed, cfg.train.global_batch, seq, dpRank * local, (dpRank + 1) * local);
  let loss = tidy(() => {
    const x = tensor(rows, { dtype: 'int32', shape: [local, seq] });
    const l = model.call(x, { labels: x }).loss!;
    l.backward(); // FSDP reduce-scatters the gradients into the shards
    return l.item();
  });
  const gradNorm = clipGradNorm(model, cfg.train.max_grad_norm); // the global norm over all shards
  opt.step();
  opt.zeroGrad();
  schedule.step();
  const t = tensor([loss], { dtype: 'float64' });
  world.allReduce(t, 'avg').wait();
  loss = t.item();
  t.dispose();
  if (step % cfg.train.log_every === 0 || step === 1) {
    const tokS = (step * cfg.train.global_batch * seq) / ((performance.now() - t0) / 1000);
    log(`step ${step}  loss ${loss.toFixed(4)}  grad norm ${gradNorm.toFixed(3)}  ${tokS.toFixed(0)} tok/s`);
  }
}

// 8. Save: gather the full weights (every rank takes part), rank 0 writes a Hugging Face folder.
const full = fullStateDict(model);
if (world.rank === 0) {
  const copy = createModel(cfg.model.config!);
  copy.loadStateDict(full);
  const out = join(cfg.run.dir, 'train-loop-final');
  saveToPretrained(copy, out);
  log(`saved ${out} (load it with fromPretrained, or: omnitrain generate --checkpoint ${out} --prompt "ROMEO:")`);
}
destroyProcessGroup();
