// The training loop of `omnitrain train`, written out as one script with no trainer class: copy
// it and edit what you need. One process per rank:
//
//   node packages/train/bin/omnitrain.js launch --nproc-per-node 2 examples/train-loop/train.ts [CONFIG] [--train.lr 1e-3 ...]
//
// CONFIG defaults to examples/train-demo/config.yaml; dotted overrides work as for `omnitrain train`.
// It uses the same library pieces: @omnitrain/data's PackedDataLoader (tokenize, pack, shard over
// dp, resumable state) and @omnitrain/checkpoint's sharded `dcp` checkpoints with FSDP's sharded
// state dicts (run it again and it resumes). What it leaves out compared with `omnitrain train`:
// metrics.jsonl, the progress bar and MFU, NaN handling, resuming at another world size (its data
// is sharded by rank; `omnitrain train` uses world-size-independent data lanes), the HF export.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dim0Shard, resumeCheckpoint, saveCheckpoint } from '@omnitrain/checkpoint';
import { plugin as gloo } from '@omnitrain/comm-gloo';
import {
  defaultRegistry,
  destroyProcessGroup,
  initDeviceMesh,
  initProcessGroup,
  manualSeed,
  mul,
  noGrad,
  optim,
  tensor,
  tidy,
  worldGroup,
} from '@omnitrain/core';
import { type DataLoaderState, disposeBatch, PackedDataLoader } from '@omnitrain/data';
import { plugin as nativeKernels, nativeStatus } from '@omnitrain/kernels-cpu';
import { createModel } from '@omnitrain/models';
import {
  clipGradNorm,
  disposeShardedStateDict,
  fullyShard,
  isRowShard,
  loadShardedOptimStateDict,
  type ShardedOptimStateDict,
  shardedOptimStateDict,
  shardedStateDict,
} from '@omnitrain/parallel-fsdp';
import { loadConfig, loadTokenizer, parseOverrides } from '@omnitrain/train';

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
const dpRank = mesh.localRank('dp');
const dpSize = mesh.size('dp');
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

// 6. Data: records of this rank's shard, tokenized and packed into rows of seq_len tokens
// (positions restart per sample, cuSeqlens mark the samples, labels are -100 across them).
const rowsPerRank = cfg.train.global_batch / dpSize;
const seq = cfg.data.seq_len;
const makeLoader = (epoch: number) =>
  new PackedDataLoader({
    sources: [{ path: cfg.data.path, textField: cfg.data.text_field, kind: 'text' }],
    tokenizer: loadTokenizer(cfg.data.tokenizer),
    tokenBudget: rowsPerRank * seq, // all of this rank's rows of a step as one packed sequence
    padToMultiple: rowsPerRank * seq,
    bufferSize: cfg.data.buffer_size,
    oversize: cfg.data.long_samples,
    rank: dpRank,
    worldSize: dpSize,
    seed: cfg.train.seed + epoch,
  });
let epoch = 0;
let loader = makeLoader(epoch);

// 7. Checkpoints: each rank saves its own rows of the model and optimizer (no gathering), plus
// the schedule, the data loader's state and the step; rank 0 commits the folder atomically.
const ckptRoot = join(cfg.run.dir, 'train-loop-checkpoints');
const toDcp = (v: unknown): unknown => {
  if (isRowShard(v)) return dim0Shard(v.local, v.globalRows, v.rowStart); // FSDP rows → a dcp sharded tensor
  if (Array.isArray(v)) return v.map(toDcp);
  if (v && typeof v === 'object' && !('isTensor' in v))
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toDcp(x)]));
  return v;
};
let startStep = 0;
{
  const modelRows = shardedStateDict(model, { allReplicas: true });
  const optimRows = shardedOptimStateDict(model, opt, { allReplicas: true, create: true });
  const res = resumeCheckpoint(ckptRoot, { model: toDcp(modelRows), optim: toDcp(optimRows) });
  if (res) {
    const st = res.state as {
      optim: ShardedOptimStateDict;
      schedule: optim.SchedulerStateDict;
      data: { epoch: number; loader: DataLoaderState };
      step: number;
    };
    loadShardedOptimStateDict(model, opt, st.optim);
    schedule.loadStateDict(st.schedule);
    epoch = st.data.epoch;
    loader = makeLoader(epoch);
    await loader.restore(st.data.loader);
    startStep = st.step;
    log(`resumed from ${res.dir} (step ${startStep})`);
  }
  disposeShardedStateDict(modelRows);
  disposeShardedStateDict(optimRows);
}
const save = (step: number) => {
  const modelRows = shardedStateDict(model);
  const optimRows = shardedOptimStateDict(model, opt);
  const tree = {
    model: toDcp(modelRows),
    optim: toDcp(optimRows),
    schedule: schedule.stateDict(),
    data: { epoch, loader: loader.state() },
    step,
  };
  const h = saveCheckpoint(ckptRoot, step, tree, { keep: cfg.checkpoint.keep });
  disposeShardedStateDict(modelRows);
  disposeShardedStateDict(optimRows);
  return h.dir;
};

// 8. The loop.
const t0 = performance.now();
for (let step = startStep + 1; step <= cfg.train.steps; step++) {
  let next = await loader.next();
  if (!next) {
    // End of the data: the next epoch.
    await loader.close();
    loader = makeLoader(++epoch);
    next = (await loader.next())!;
  }
  const batch = next;
  // The loss is the mean over the target tokens of all ranks: count them first.
  const labelsHost = batch.labels.toTypedArray() as Int32Array;
  const mine = labelsHost.reduce((n, v) => n + (v !== -100 ? 1 : 0), 0);
  const count = tensor([mine], { dtype: 'float64' });
  world.allReduce(count, 'sum').wait();
  const total = count.item();
  count.dispose();
  const T = labelsHost.length;
  // tidy around the forward only, so that its intermediates are freed as it returns and backward
  // frees activations unit by unit (autograd keeps its own references to what it saved).
  const l = tidy(() => {
    // The model shifts labels by one inside (Hugging Face style); the loader's are already next-token targets.
    const shifted = new Int32Array(T).fill(-100);
    shifted.set(labelsHost.subarray(0, T - 1), 1);
    return model.call(batch.inputIds.reshape(1, T), {
      labels: tensor(shifted, { dtype: 'int32', shape: [1, T] }),
      positions: batch.positions.reshape(1, T),
      cuSeqlens: batch.cuSeqlens,
    }).loss!;
  });
  let loss = (l.item() * mine) / total;
  tidy(() => mul(l, (mine * dpSize) / total).backward()); // FSDP reduce-scatters (averaging over dp) into the shards
  l.dispose();
  disposeBatch(batch);
  const gradNorm = clipGradNorm(model, cfg.train.max_grad_norm); // the global norm over all shards
  opt.step();
  opt.zeroGrad();
  schedule.step();
  const t = tensor([loss], { dtype: 'float64' });
  world.allReduce(t, 'sum').wait();
  loss = t.item();
  t.dispose();
  if (step % cfg.train.log_every === 0 || step === startStep + 1 || step === cfg.train.steps) {
    const tokS = ((step - startStep) * cfg.train.global_batch * seq) / ((performance.now() - t0) / 1000);
    log(`step ${step}  loss ${loss.toFixed(4)}  grad norm ${gradNorm.toFixed(3)}  ${tokS.toFixed(0)} tok/s`);
  }
  if ((cfg.checkpoint.every > 0 && step % cfg.checkpoint.every === 0) || step === cfg.train.steps) {
    log(`checkpoint: ${save(step)}`);
  }
}
await loader.close();
destroyProcessGroup();
