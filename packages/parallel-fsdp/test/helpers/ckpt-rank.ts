// One rank of the sharded-checkpoint tests (spawned through helpers/spawn.ts runRanks).
// Env: RANK, WORLD_SIZE, MASTER_PORT, OMNITRAIN_STORE_SECRET; FIXTURE (models fixture folder,
// default qwen2-base); MESH ('RxS' for HSDP); CKPT (checkpoint root); RESUME=1 (load the newest
// checkpoint under CKPT first); STEPS (steps to run in this process); SAVE_AFTER (save after this
// many steps of this process); TOTAL (schedule length, default 8); GB, SEQ.
// Prints `RESULT {"rank", "losses", "startStep"}`.

import { readFileSync } from 'node:fs';
import '@omnitrain/comm-gloo/register';
import { dim0Shard, loadCheckpoint, resumeCheckpoint, saveCheckpoint } from '@omnitrain/checkpoint';
import {
  defaultGenerator,
  destroyProcessGroup,
  initDeviceMesh,
  initProcessGroup,
  manualSeed,
  optim,
  rand,
  type Tensor,
  tensor,
  tidy,
  worldGroup,
} from '@omnitrain/core';
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
} from '../../src/index.js';

const env = process.env;
const fixtures = new URL('../../../models/test/fixtures/', import.meta.url);
const steps = Number(env.STEPS ?? 2);
const saveAfter = env.SAVE_AFTER === undefined ? -1 : Number(env.SAVE_AFTER);
const total = Number(env.TOTAL ?? 8);
const gb = Number(env.GB ?? 4);
const seq = Number(env.SEQ ?? 8);
const [rep, shd] = (env.MESH ?? '').split('x').map(Number);

/** RowShard leaves → dcp ShardedTensors (other values as they are). */
function toDcp(v: unknown): unknown {
  if (isRowShard(v)) return dim0Shard(v.local, v.globalRows, v.rowStart);
  if (v && typeof v === 'object' && !(v as { isTensor?: boolean }).isTensor) {
    if (Array.isArray(v)) return v.map(toDcp);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toDcp(x)]));
  }
  return v;
}

function main(): unknown {
  const cfg = JSON.parse(readFileSync(new URL(`${env.FIXTURE ?? 'qwen2-base'}/config.json`, fixtures), 'utf8'));
  manualSeed(1234);
  const model = createModel(cfg);
  const mesh = rep ? initDeviceMesh({ dp_replicate: rep, dp_shard: shd }) : initDeviceMesh({});
  const dpRank = mesh.localRank('dp');
  const dpSize = mesh.size('dp');
  for (const name of model.parallelPlan().blocks) {
    fullyShard(model.namedModules().find(([n]) => n === name)![1], { mesh });
  }
  fullyShard(model, { mesh });
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
  const sched = optim.cosineSchedule(opt, { warmupSteps: 2, totalSteps: total });
  const gen = defaultGenerator();
  let step = 0;
  let startStep = 0;
  if (env.RESUME === '1') {
    const targets = {
      model: toDcp(shardedStateDict(model, { allReplicas: true })),
      optim: toDcp(shardedOptimStateDict(model, opt, { allReplicas: true, create: true })),
    };
    const res = env.CKPT_DIR ? loadCheckpoint(env.CKPT_DIR, targets) : resumeCheckpoint(env.CKPT!, targets);
    if (!res) throw new Error(`no checkpoint under ${env.CKPT}`);
    const st = res.state as {
      optim: ShardedOptimStateDict;
      sched: optim.SchedulerStateDict;
      rng: ReturnType<typeof gen.getState>;
      step: number;
    };
    loadShardedOptimStateDict(model, opt, st.optim);
    sched.loadStateDict(st.sched);
    gen.setState(st.rng);
    step = st.step;
    startStep = step;
    if (res.step !== step) throw new Error(`checkpoint folder step ${res.step} but state step ${step}`);
    disposeShardedStateDict(targets);
  }
  const vocab = cfg.vocab_size as number;
  const world = worldGroup();
  const losses: number[] = [];
  const local = gb / dpSize;
  for (let i = 0; i < steps; i++) {
    // The batch depends on the step and on the RNG (a random shift), so both must be restored.
    const shift = tidy(() => Math.floor(rand([1]).item() * 1000));
    const rows = Array.from({ length: gb }, (_, b) =>
      Array.from({ length: seq }, (_, s) => (shift + step * 31 + b * 17 + s * 7 + ((b * s) % 5)) % vocab),
    ).slice(dpRank * local, (dpRank + 1) * local);
    let l = 0;
    tidy(() => {
      const x = tensor(rows.flat(), { dtype: 'int32', shape: [rows.length, seq] });
      const loss = model.call(x, { labels: x }).loss!;
      l = loss.item();
      loss.backward();
    });
    clipGradNorm(model, 1.0);
    opt.step();
    sched.step();
    model.zeroGrad();
    step++;
    const t: Tensor = tensor([l], { dtype: 'float64' });
    world.allReduce(t, 'avg').wait();
    losses.push(t.item());
    t.dispose();
    if (i + 1 === saveAfter) {
      const tree = {
        model: shardedStateDict(model),
        optim: shardedOptimStateDict(model, opt),
        sched: sched.stateDict(),
        rng: gen.getState(),
        step,
      };
      saveCheckpoint(env.CKPT!, step, toDcp(tree), { keep: 2, async: env.ASYNC === '1' }).wait();
      disposeShardedStateDict(tree);
    }
  }
  return { rank: world.rank, losses, startStep };
}

initProcessGroup({ backend: 'gloo' });
const out = main();
console.log(`RESULT ${JSON.stringify(out)}`);
destroyProcessGroup();
