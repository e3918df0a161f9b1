// One rank of the multi-process FSDP tests and bench (spawned by spawn.ts, or run alone).
// Env: RANK, WORLD_SIZE, MASTER_PORT, OMNITRAIN_STORE_SECRET, SCENARIO ('train' | 'errors'),
// MODEL (qwen2 | qwen3_moe), STEPS, MESH ('R×S' as "RxS"), PLAIN=1 (no FSDP, world 1),
// ROOT_ONLY=1, NORESHARD=1, FIXTURE (models test fixture folder, default <MODEL>-base), MP=bf16, PREFETCH=0, MICRO (micro-batches per step), AUX=1 (MoE router aux loss), META=1, TRACE=1, HIDDEN/LAYERS (bench sizes).
// Prints `RESULT <json>`.

import { readFileSync } from 'node:fs';
import '@omnitrain/comm-gloo/register';
import {
  DeviceMesh,
  destroyProcessGroup,
  getRegistry,
  initDeviceMesh,
  initProcessGroup,
  manualSeed,
  memoryStats,
  mul,
  type nn,
  optim,
  sum,
  type Tensor,
  tensor,
  tidy,
  worldGroup,
} from '@omnitrain/core';
import { createModel } from '@omnitrain/models';
import { unitsOf } from '../../src/fully-shard.js';
import {
  checkOptimizer,
  clipGradNorm,
  type FSDPEvent,
  fullStateDict,
  fullyShard,
  loadFullStateDict,
  trainingStateBytes,
} from '../../src/index.js';

const env = process.env;
const scenario = env.SCENARIO ?? 'train';
const modelType = env.MODEL ?? 'qwen2';
const steps = Number(env.STEPS ?? 3);
const micro = Number(env.MICRO ?? 1);
const plain = env.PLAIN === '1';
const [rep, shd] = (env.MESH ?? '').split('x').map(Number);
const fixtures = new URL('../../../models/test/fixtures/', import.meta.url);

function config(): Record<string, unknown> {
  const cfg = JSON.parse(readFileSync(new URL(`${env.FIXTURE ?? `${modelType}-base`}/config.json`, fixtures), 'utf8'));
  if (env.HIDDEN) {
    const h = Number(env.HIDDEN);
    Object.assign(cfg, { hidden_size: h, intermediate_size: 4 * h, moe_intermediate_size: h, vocab_size: 512 });
    if (cfg.head_dim) cfg.head_dim = h / cfg.num_attention_heads;
  }
  if (env.LAYERS) cfg.num_hidden_layers = Number(env.LAYERS);
  // The load-balancing loss is not linear in the batch (HF computes it per device): on with AUX=1,
  // where N data-parallel ranks match one process with N micro-batches.
  if (cfg.model_type === 'qwen3_moe' && env.AUX !== '1') cfg.output_router_logits = false;
  return cfg;
}

/** Global batch of step `step`: GB sequences of SEQ tokens, deterministic. */
function batch(step: number, vocab: number, gb: number, seq: number): number[][] {
  return Array.from({ length: gb }, (_, b) =>
    Array.from({ length: seq }, (_, s) => (step * 31 + b * 17 + s * 7 + ((b * s) % 5)) % vocab),
  );
}

function ids(rows: number[][]): Tensor {
  return tensor(rows.flat(), { dtype: 'int32', shape: [rows.length, rows[0]!.length] });
}

function train(): unknown {
  const cfg = config();
  manualSeed(1234);
  const model = createModel(cfg, { device: env.META === '1' ? 'meta' : 'cpu' });
  const world = plain ? null : worldGroup();
  const rank = world?.rank ?? 0;
  const events: (FSDPEvent & { live: number; peak: number })[] = [];
  let dpRank = 0;
  let dpSize = 1;
  if (!plain) {
    const mesh = rep ? initDeviceMesh({ dp_replicate: rep, dp_shard: shd }) : initDeviceMesh({});
    dpRank = mesh.localRank('dp');
    dpSize = mesh.size('dp');
    const mp = env.MP === 'bf16' ? { paramDtype: 'bfloat16' as const, reduceDtype: 'float32' as const } : undefined;
    const common = {
      mesh,
      mixedPrecision: mp,
      prefetch: env.PREFETCH !== '0',
      trace:
        env.TRACE === '1'
          ? (e: FSDPEvent) =>
              events.push({ ...e, live: memoryStats('cpu').liveBytes, peak: memoryStats('cpu').peakBytes })
          : undefined,
      reshardAfterForward: env.NORESHARD !== '1',
    };
    // ROOT_ONLY=1: one unit for the whole model (tied embedding and lm_head inside it).
    for (const name of env.ROOT_ONLY === '1' ? [] : model.parallelPlan().blocks) {
      const block = model.namedModules().find(([n]) => n === name)![1];
      fullyShard(block, common);
    }
    fullyShard(model, common);
  } else if (env.META === '1') model.materialize('cpu');
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.01 });
  if (!plain) checkOptimizer(opt, model);
  const vocab = cfg.vocab_size as number;
  const gb = Number(env.GB ?? 4);
  const seq = Number(env.SEQ ?? 8);
  const local = gb / dpSize;
  const losses: number[] = [];
  const norms: number[] = [];
  const stepMs: number[] = [];
  let state = null as unknown;
  let peak = 0;
  const live: number[] = [];
  // Full (unsharded) bytes of each unit, root first: what reshard after forward frees per unit.
  const unitBytes = plain ? [] : unitsOf(model).map((u) => ({ name: u.name, root: u.isRoot, bytes: u.fullBytes() }));
  // Peak of the training steps only (not of building the full model before sharding it).
  getRegistry().backend('cpu').resetPeak();
  // Live bytes right after the forward (before backward) and the peak over forward + backward, per step.
  const afterForward: number[] = [];
  const fwdBwdPeak: number[] = [];
  for (let step = 0; step < steps; step++) {
    const t0 = performance.now();
    const cpu = getRegistry().backend('cpu');
    peak = Math.max(peak, cpu.stats().peakBytes);
    cpu.resetPeak();
    const rows = batch(step, vocab, gb, seq).slice(dpRank * local, (dpRank + 1) * local);
    const per = rows.length / micro;
    let lossSum = 0;
    for (let m = 0; m < micro; m++) {
      // Forward intermediates are freed by tidy as the forward returns: autograd keeps what it
      // saved (its own references) and frees each saved tensor as backward uses it, so the
      // activations go unit by unit in backward instead of all at the end of the step.
      const loss = tidy(() => {
        const x = ids(rows.slice(m * per, (m + 1) * per));
        return model.call(x, { labels: x }).loss!;
      });
      if (m === 0) afterForward.push(memoryStats('cpu').liveBytes);
      lossSum += loss.item() / micro;
      tidy(() => (micro > 1 ? mul(loss, 1 / micro) : loss).backward());
      loss.dispose();
    }
    fwdBwdPeak.push(memoryStats('cpu').peakBytes);
    const norm = plain ? optim.clipGradNorm(model.parameters(), 1.0) : clipGradNorm(model, 1.0);
    opt.step();
    state = trainingStateBytes(model, opt);
    model.zeroGrad();
    stepMs.push(performance.now() - t0);
    peak = Math.max(peak, memoryStats('cpu').peakBytes);
    live.push(memoryStats('cpu').liveBytes);
    let l = lossSum;
    if (world) {
      const t = tensor([l], { dtype: 'float64' });
      world.allReduce(t, 'avg').wait();
      l = t.item();
      t.dispose();
    }
    losses.push(l);
    norms.push(norm);
  }
  let checksum: number | null = null;
  if (env.STATE_DICT === '1') {
    const sd = plain ? model.stateDict() : fullStateDict(model);
    checksum = 0;
    for (const k of Object.keys(sd).sort()) {
      const a = sd[k]!.toTypedArray();
      for (let i = 0; i < a.length; i++) checksum += a[i]! * ((i % 7) + 1);
    }
    if (!plain) {
      // Round trip: loading the full state dict back gives the same shards.
      const before = model.parameters().map((p) => Array.from(p.toTypedArray()));
      loadFullStateDict(model, sd);
      const after = model.parameters().map((p) => Array.from(p.toTypedArray()));
      if (JSON.stringify(before) !== JSON.stringify(after))
        throw new Error('loadFullStateDict round trip changed shards');
      for (const t of new Set(Object.values(sd) as Tensor[])) t.dispose();
    }
  }
  return { rank, losses, norms, state, peak, live, stepMs, events, checksum, unitBytes, afterForward, fwdBwdPeak };
}

function errors(): unknown {
  const msgs: Record<string, string> = {};
  const world = worldGroup();
  const attempt = (k: string, f: () => void) => {
    try {
      f();
      msgs[k] = 'no error';
    } catch (e) {
      msgs[k] = (e as Error).message;
    }
  };
  const cfg = config();
  attempt('mesh', () => {
    const mesh = new DeviceMesh({ dp_shard: world.size * 2 }, world.size * 2, world.rank);
    fullyShard(createModel(cfg), { mesh });
  });
  attempt('twice', () => {
    const m = createModel(cfg);
    fullyShard(m.model.layers.at(0)!);
    fullyShard(m.model.layers.at(0)!);
  });
  attempt('optimizer', () => {
    const m = createModel(cfg);
    const opt = new optim.AdamW(m.parameters());
    const x = ids(batch(0, 128, 2, 4));
    m.call(x, { labels: x }).loss!.backward();
    opt.step();
    m.zeroGrad();
    for (const b of m.model.layers) fullyShard(b as nn.Module);
    fullyShard(m);
    checkOptimizer(opt, m);
  });
  attempt('foreign', () => {
    const sharded = createModel(cfg);
    for (const b of sharded.model.layers) fullyShard(b as nn.Module);
    fullyShard(sharded);
    checkOptimizer(new optim.AdamW(createModel(cfg).parameters()), sharded);
  });
  attempt('skipped', () => {
    // Backward from inside a resharded unit (its MLP's output) skips the unit's pre-backward hook.
    const m = createModel(cfg);
    for (const b of m.model.layers) fullyShard(b as nn.Module);
    fullyShard(m);
    let inner: Tensor | null = null;
    m.namedModules()
      .find(([n]) => n === 'model.layers.0.mlp')![1]
      .registerForwardHook((_m, _a, out) => {
        inner = out as Tensor;
      });
    tidy(() => {
      const x = ids(batch(0, 128, 2, 4));
      m.call(x, { labels: x });
      sum(inner!).backward();
    });
  });
  return { rank: world.rank, msgs };
}

if (!plain) initProcessGroup({ backend: 'gloo', timeoutMs: Number(env.TIMEOUT_MS ?? 60000) });
try {
  const result = scenario === 'errors' ? errors() : train();
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
} finally {
  if (!plain) destroyProcessGroup();
}
