import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { METADATA_FILE, releaseSaveBuffer, reserveSaveBuffer, type SaveHandle } from '@omnitrain/checkpoint';
import {
  defaultRegistry,
  destroyProcessGroup,
  Generator,
  getRegistry,
  initDeviceMesh,
  initProcessGroup,
  manualSeed,
  memoryStats,
  mul,
  type nn,
  noGrad,
  optim,
  type ProcessGroup,
  tensor,
  tidy,
} from '@omnitrain/core';
import { type CausalLM, createModel, fromPretrained } from '@omnitrain/models';
import type { TrainConfig } from './config.js';
import { flopsPerToken, ProgressReporter } from './progress.js';
import { loadTokenizer, TrainData } from './train-data.js';
import {
  exportHfParallel,
  latestTrainState,
  loadHfParallel,
  loadTrainState,
  saveTrainState,
  type TrainMeta,
} from './train-state.js';

/** Where the trainer writes its log lines. */
export interface TrainIO {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown };
  env?: Record<string, string | undefined>;
}

/** A NaN/Inf loss or gradient norm stopped the run. */
export class NonFiniteError extends Error {}

/** What a finished run reports. */
export interface TrainResult {
  firstStep: number;
  lastStep: number;
  resumedFrom: string | null;
  losses: number[];
  seconds: number;
}

/** One line of metrics.jsonl. */
export interface MetricsRecord {
  step: number;
  loss: number;
  grad_norm: number;
  lr: number;
  tokens_per_s: number;
  /** Achieved model FLOP/s estimate over the job: (6 × parameters + attention) per token × tokens/s ({@link flopsPerToken}). */
  model_flops: number;
  /** model_flops over the peak of all ranks (null when no peak is known). */
  mfu: number | null;
  elapsed_s: number;
  live_bytes: number;
  /** Highest live bytes (CPU, this rank = rank 0) during the step: forward, backward, clipping and optimizer. */
  peak_bytes: number;
  time: string;
}

/** Read the whole text of a JSONL corpus as bytes (one record per line, '\n'-joined). */
export function loadCorpusBytes(path: string, field: string): Uint8Array {
  const texts: string[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        throw new Error(`data ${path}:${i + 1}: not JSON (${(e as Error).message})`);
      }
      const t = (rec as Record<string, unknown>)[field];
      if (typeof t !== 'string') throw new Error(`data ${path}:${i + 1}: field '${field}' is not a string`);
      texts.push(t);
    });
  const bytes = new Uint8Array(Buffer.from(texts.join('\n'), 'utf8'));
  if (bytes.length < 2) throw new Error(`data ${path}: the corpus has ${bytes.length} bytes`);
  return bytes;
}

/**
 * Rows `[from, to)` of step `step`'s global batch: random windows of `seq` bytes, the same on every rank.
 * @deprecated `omnitrain train` now reads its data with @omnitrain/data ({@link TrainData}); kept for old scripts.
 */
export function batchRows(
  data: Uint8Array,
  step: number,
  seed: number,
  global: number,
  seq: number,
  from: number,
  to: number,
): Int32Array {
  const gen = new Generator(seed * 1_000_003 + step);
  const starts = gen.uint32(global);
  const out = new Int32Array((to - from) * seq);
  for (let b = from; b < to; b++) {
    const s = starts[b]! % Math.max(1, data.length - seq);
    for (let j = 0; j < seq; j++) out[(b - from) * seq + j] = data[s + j] ?? 0;
  }
  return out;
}

/** Complete (`dcp`) checkpoints of a run folder (`RUN_DIR/checkpoints/step-N`), oldest first. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  const root = join(runDir, 'checkpoints');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((n) => ({ m: /^step-(\d+)$/.exec(n), n }))
    .filter((x) => x.m && existsSync(join(root, x.n, METADATA_FILE)))
    .map((x) => ({ step: Number(x.m![1]), dir: join(root, x.n) }))
    .sort((a, b) => a.step - b.step);
}

/**
 * The peak FLOP/s of one rank for the MFU estimate: `train.peak_tflops` when set, else with the
 * native CPU kernels the measured fp32 FMA peak of the cores this rank gets (the machine's
 * cores divided by the ranks on it); null ('n/a') otherwise.
 */
export async function peakFlopsPerRank(
  cfg: TrainConfig,
  localWorldSize: number,
): Promise<{ flops: number | null; how: string }> {
  if (cfg.train.peak_tflops > 0) return { flops: cfg.train.peak_tflops * 1e12, how: 'train.peak_tflops' };
  const r = defaultRegistry();
  if (!r.plugins().some((p) => p.name === 'kernels-cpu'))
    return { flops: null, how: 'no peak known: set train.peak_tflops' };
  try {
    const k = await import('@omnitrain/kernels-cpu');
    const cores = Math.max(1, Math.floor(availableParallelism() / Math.max(1, localWorldSize)));
    const gflops = k.fmaPeakGflops(cores, 0.2);
    return { flops: gflops * 1e9, how: `measured fp32 FMA peak of ${cores} core${cores > 1 ? 's' : ''}` };
  } catch (e) {
    return { flops: null, how: `no peak known (${(e as Error).message})` };
  }
}

async function usePlugins(cfg: TrainConfig, log: (s: string) => void): Promise<void> {
  const r = defaultRegistry();
  if (cfg.kernels.cpu === 'native') {
    const k = await import('@omnitrain/kernels-cpu');
    const st = k.nativeStatus();
    if (st.available && !r.plugins().some((p) => p.name === k.plugin.name)) r.use(k.plugin);
    log(`kernels: ${st.available ? st.message : `core reference (${st.message})`}`);
  } else log('kernels: core reference (kernels.cpu = reference)');
  const ckpt = await import('@omnitrain/checkpoint');
  if (!r.checkpointFormats.has('dcp')) r.use(ckpt.plugin);
  if (!r.checkpointFormats.has(cfg.checkpoint.format)) {
    throw new Error(
      `checkpoint.format '${cfg.checkpoint.format}' is not installed; installed formats: ${r.checkpointFormats.names().join(', ')}`,
    );
  }
  if (cfg.checkpoint.format !== 'dcp') {
    throw new Error(
      `checkpoint.format '${cfg.checkpoint.format}' is installed but omnitrain train saves its training state as 'dcp' ` +
        `(model, optimizer, schedule, data, RNG, step); for a Hugging Face folder of the weights set checkpoint.export_hf: true`,
    );
  }
}

/**
 * Run the training loop of `cfg` in this process: one rank of a launched job when WORLD_SIZE is
 * set (FSDP over the configured mesh), otherwise alone. Resumes from the run folder's newest
 * complete `dcp` checkpoint when `checkpoint.resume` is 'auto' — saved at any world size.
 */
export async function runTraining(cfg: TrainConfig, io: TrainIO): Promise<TrainResult> {
  const env = io.env ?? process.env;
  const worldSize = Number(env.WORLD_SIZE ?? 1);
  const envRank = Number(env.RANK ?? 0);
  const reporter = new ProgressReporter(envRank === 0 ? io.stdout : { write: () => true }, {
    logEvery: cfg.train.log_every,
    firstStep: 1,
    lastStep: cfg.train.steps,
  });
  const log = (s: string) => {
    if (envRank === 0) reporter.message(s);
  };
  await usePlugins(cfg, log);
  const r = defaultRegistry();
  let world: ProcessGroup | null = null;
  let dpRank = 0;
  let dpSize = 1;
  type Fsdp = typeof import('@omnitrain/parallel-fsdp');
  let fsdp: Fsdp | null = null;
  if (worldSize > 1) {
    const gloo = await import('@omnitrain/comm-gloo');
    if (!r.processGroups.has('gloo')) r.use(gloo.plugin);
    if (!r.processGroups.has(cfg.parallel.backend)) {
      throw new Error(
        `parallel.backend '${cfg.parallel.backend}' is not installed; installed backends: ${r.processGroups.names().join(', ')}`,
      );
    }
    if (cfg.parallel.strategy !== 'fsdp') {
      throw new Error(`parallel.strategy '${cfg.parallel.strategy}' runs on one rank, but WORLD_SIZE is ${worldSize}`);
    }
    fsdp = await import('@omnitrain/parallel-fsdp');
    if (!r.parallel.has('fsdp')) r.use(fsdp.plugin);
    world = initProcessGroup({ backend: cfg.parallel.backend, env });
  } else if (cfg.parallel.strategy === 'fsdp') {
    log('parallel: one rank, FSDP not needed (run with --nproc-per-node N to shard)');
  }
  const rank = world?.rank ?? 0;
  let data: TrainData | null = null;
  try {
    const peak =
      rank === 0 ? await peakFlopsPerRank(cfg, Number(env.LOCAL_WORLD_SIZE ?? worldSize)) : { flops: null, how: '' };
    const modelCfg: Record<string, unknown> = cfg.model.pretrained
      ? JSON.parse(readFileSync(join(cfg.model.pretrained, 'config.json'), 'utf8'))
      : cfg.model.config!;
    const tokenizer = loadTokenizer(cfg.data.tokenizer);
    const vocab = Number(modelCfg.vocab_size);
    if (!(vocab >= tokenizer.vocabSize)) {
      throw new Error(
        `model.config.vocab_size is ${vocab}; data.tokenizer '${cfg.data.tokenizer}' has ${tokenizer.vocabSize} ids (allowed: vocab_size >= ${tokenizer.vocabSize})`,
      );
    }
    manualSeed(cfg.train.seed);
    // From a Hugging Face folder: one rank reads it whole; several ranks build the model on 'meta',
    // shard it, then each reads only its rows of the safetensors (no rank holds the full model).
    const hfSharded = !!cfg.model.pretrained && !!world && !!fsdp;
    const model: CausalLM = cfg.model.pretrained
      ? hfSharded
        ? createModel(modelCfg, { device: 'meta' })
        : fromPretrained(cfg.model.pretrained)
      : createModel(modelCfg);
    if (!cfg.model.pretrained) {
      noGrad(() => {
        // createModel initialises embeddings N(0, 1): with tied weights that gives huge logits.
        const e = model.model.embedTokens.weight;
        const std = cfg.model.init_embedding_std;
        const scaled = tidy(() =>
          Float32Array.from(e.to('float32').toTypedArray() as ArrayLike<number>, (v) => v * std),
        );
        e.setData(tensor(scaled, { shape: e.shape }));
      });
    }
    // Counted before sharding (afterwards each rank holds only its shards).
    const nParams = model.numParameters();
    const hidden = Number(modelCfg.hidden_size);
    const heads = Number(modelCfg.num_attention_heads);
    const flopsPerTok = flopsPerToken(
      {
        numParameters: nParams,
        embeddingParameters: model.lmHead ? vocab * hidden : 0,
        numLayers: Number(modelCfg.num_hidden_layers),
        numHeads: heads,
        headDim: Number(modelCfg.head_dim ?? hidden / heads),
      },
      cfg.data.seq_len,
    );
    // --profile: a Chrome trace, compute (tid 1) and communication (tid 2) on separate tracks.
    const trace: Record<string, unknown>[] = [];
    let tracing = false;
    const origin = performance.now();
    const us = (t: number) => Math.round((t - origin) * 1000);
    const span = (name: string, tid: number, t0: number, t1: number, args?: Record<string, unknown>) =>
      trace.push({
        name,
        ph: 'X',
        pid: 0,
        tid,
        ts: us(t0),
        dur: Math.max(1, us(t1) - us(t0)),
        ...(args ? { args } : {}),
      });
    const open = new Map<string, number>();
    const onFsdp = (e: { t: number; unit: string; kind: string }) => {
      if (!tracing) return;
      const unit = e.unit || 'root';
      const [what, phase] = e.kind.startsWith('allgather')
        ? ['all-gather', e.kind.slice(10)]
        : e.kind.startsWith('reduce-scatter')
          ? ['reduce-scatter', e.kind.slice(15)]
          : [e.kind.split('-')[0]!, e.kind.split('-')[1]!];
      const key = `${what} ${unit}`;
      if (phase === 'issue' || phase === 'start') open.set(key, e.t);
      else if (open.has(key)) {
        span(key, what === 'forward' ? 1 : 2, open.get(key)!, e.t);
        open.delete(key);
      }
    };
    if (world && fsdp) {
      const mesh = initDeviceMesh(
        cfg.parallel.dp_shard > 0
          ? { dp_shard: cfg.parallel.dp_shard, dp_replicate: cfg.parallel.dp_replicate }
          : { dp_replicate: cfg.parallel.dp_replicate },
      );
      dpRank = mesh.localRank('dp');
      dpSize = mesh.size('dp');
      for (const name of model.parallelPlan().blocks) {
        const block = model.namedModules().find(([n]) => n === name)![1];
        fsdp.fullyShard(block, { mesh, trace: onFsdp });
      }
      fsdp.fullyShard(model, { mesh, trace: onFsdp });
      if (hfSharded) {
        const { bytesRead } = loadHfParallel(model, cfg.model.pretrained!);
        log(
          `model: loaded this rank's rows of ${cfg.model.pretrained} (${(bytesRead / 1e6).toFixed(1)} MB on rank ${rank})`,
        );
      }
      log(
        `parallel: fsdp over ${cfg.parallel.backend}, world ${worldSize}, mesh dp_replicate ${mesh.sizes.dp_replicate} × dp_shard ${mesh.sizes.dp_shard}`,
      );
    }
    if (cfg.train.global_batch % dpSize !== 0) {
      throw new Error(
        `train.global_batch is ${cfg.train.global_batch}; allowed: a multiple of the data-parallel size ${dpSize}`,
      );
    }
    const local = cfg.train.global_batch / dpSize;
    const seq = cfg.data.seq_len;
    data = new TrainData({
      path: cfg.data.path,
      textField: cfg.data.text_field,
      tokenizer,
      seqLen: seq,
      lanes: cfg.train.global_batch,
      from: dpRank * local,
      to: (dpRank + 1) * local,
      seed: cfg.train.seed,
      bufferSize: cfg.data.buffer_size,
      longSamples: cfg.data.long_samples,
    });
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
    const parts = { model, opt, schedule, data };
    if (cfg.checkpoint.async) {
      // Map the host buffer of async saves now (pages touched in a background thread), so that even
      // the first save only copies: this rank's parameters plus AdamW's two moments, 64 B apart.
      const params = model.parameters();
      reserveSaveBuffer(params.reduce((a, p) => a + 3 * (p.byteLength + 64), 0));
    }
    const meta: TrainMeta = {
      world_size: worldSize,
      model_config: modelCfg,
      tokenizer: cfg.data.tokenizer,
      config: cfg,
    };
    const runDir = cfg.run.dir;
    const ckptRoot = join(runDir, 'checkpoints');
    mkdirSync(ckptRoot, { recursive: true });
    const metricsFile = join(runDir, 'metrics.jsonl');

    // Resume.
    let startStep = 0;
    let resumedFrom: string | null = null;
    const latest = cfg.checkpoint.resume === 'auto' ? latestTrainState(ckptRoot) : null;
    if (latest) {
      const loaded = await loadTrainState(latest.dir, parts);
      // The load staged its bytes in the host buffer shared with async saves: keep it only for those.
      if (!cfg.checkpoint.async) releaseSaveBuffer();
      startStep = loaded.step;
      resumedFrom = latest.dir;
      log(
        `resumed from ${latest.dir} (step ${startStep}${loaded.meta.world_size !== worldSize ? `, saved by ${loaded.meta.world_size} ranks, resharded to ${worldSize}` : ''})`,
      );
    }
    if (rank === 0) {
      // The curve continues from the checkpoint: drop metrics of steps after it.
      const kept = existsSync(metricsFile)
        ? readFileSync(metricsFile, 'utf8')
            .split('\n')
            .filter((l) => l.trim() && (JSON.parse(l) as MetricsRecord).step <= startStep)
        : [];
      writeFileSync(metricsFile, kept.map((l) => `${l}\n`).join(''));
    }

    let pendingSave: SaveHandle | null = null;
    const save = (step: number) => {
      pendingSave = saveTrainState(ckptRoot, step, parts, meta, {
        keep: cfg.checkpoint.keep,
        async: cfg.checkpoint.async,
        group: world,
      });
      return pendingSave.dir;
    };
    const exportHf = () => {
      // Every rank writes its own rows of the safetensors (no gather to rank 0).
      const dir = join(runDir, 'hf');
      exportHfParallel(model, dir, world);
      return dir;
    };

    log(
      `model: ${modelCfg.model_type}, ${nParams.toLocaleString()} parameters, ${(flopsPerTok / 1e6).toFixed(2)} MFLOP/token; ` +
        `data: ${[cfg.data.path].flat().join(', ')}, tokenizer ${cfg.data.tokenizer}, ${cfg.train.global_batch} packed rows × ${seq} tokens per step; ` +
        `steps ${startStep + 1}..${cfg.train.steps}; run folder ${runDir}`,
    );
    log(
      `mfu: ${peak.flops ? `peak ${(peak.flops / 1e9).toFixed(1)} GFLOP/s per rank (${peak.how})` : `n/a (${peak.how})`}`,
    );
    const t0 = performance.now();
    const losses: number[] = [];
    let lastGood: string | null = latest?.dir ?? null;
    const end = cfg.train.stop_after > 0 ? Math.min(cfg.train.steps, cfg.train.stop_after) : cfg.train.steps;
    reporter.setSteps(startStep + 1, end);
    const tokensPerStep = cfg.train.global_batch * seq;
    for (let step = startStep + 1; step <= end; step++) {
      tracing = step <= startStep + cfg.train.profile;
      const ts = performance.now();
      getRegistry().backend('cpu').resetPeak();
      const rows = await data.next();
      // The loss is the mean over every target token of the global batch, whichever rank holds it.
      let globalCount = rows.targetCount;
      if (world) {
        const c = tensor([rows.targetCount], { dtype: 'float64' });
        world.allReduce(c, 'sum').wait();
        globalCount = c.item();
        c.dispose();
      }
      const T = rows.inputIds.length;
      const modelLabels = new Int32Array(T);
      modelLabels[0] = -100;
      modelLabels.set(rows.targets.subarray(0, T - 1), 1); // the model shifts labels by one inside
      // tidy around the forward only: its intermediates are freed as it returns (autograd holds
      // its own references to what backward needs and drops each as backward uses it, and FSDP
      // has resharded each unit after its forward), so activations go unit by unit in backward.
      const l = tidy(() => {
        const x = tensor(rows.inputIds, { dtype: 'int32', shape: [1, T] });
        return model.call(x, {
          labels: tensor(modelLabels, { dtype: 'int32', shape: [1, T] }),
          positions: tensor(rows.positions, { dtype: 'int32', shape: [1, T] }),
          cuSeqlens: tensor(rows.cuSeqlens, { dtype: 'int32' }),
        }).loss!;
      });
      let loss = (l.item() * rows.targetCount) / globalCount;
      // FSDP averages gradients over dp: scale so the result is the gradient of the global mean.
      tidy(() => mul(l, (rows.targetCount * dpSize) / globalCount).backward());
      l.dispose();
      const tb = performance.now();
      const norm = fsdp
        ? fsdp.clipGradNorm(model as nn.Module, cfg.train.max_grad_norm)
        : optim.clipGradNorm(model.parameters(), cfg.train.max_grad_norm);
      if (world) {
        const t = tensor([loss], { dtype: 'float64' });
        world.allReduce(t, 'sum').wait();
        loss = t.item();
        t.dispose();
      }
      // Fault injection for tests and drills: OMNITRAIN_FAULT_NAN_STEP=N makes step N's loss NaN.
      if (step === Number(env.OMNITRAIN_FAULT_NAN_STEP ?? -1)) loss = Number.NaN;
      if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
        const what = `step ${step}: ${!Number.isFinite(loss) ? `loss is ${loss}` : `gradient norm is ${norm}`}`;
        if (cfg.train.on_nonfinite === 'skip') {
          opt.zeroGrad();
          log(`${what}; step skipped (train.on_nonfinite = skip)`);
          continue;
        }
        throw new NonFiniteError(
          `${what}; run stopped. Last good checkpoint: ${lastGood ?? 'none (no checkpoint was saved yet)'}`,
        );
      }
      const tc = performance.now();
      opt.step();
      opt.zeroGrad();
      schedule.step();
      losses.push(loss);
      const now = performance.now();
      if (tracing) {
        span(`step ${step}`, 0, ts, now, { loss });
        span('forward + backward', 1, ts, tb);
        span('clip grad norm (reduce + norm)', 2, tb, tc);
        span('optimizer', 1, tc, now);
      }
      if (cfg.train.profile > 0 && (step === startStep + cfg.train.profile || step === end)) {
        if (trace.length) {
          const names = ['step', 'compute', 'communication'].map((n, tid) => ({
            name: 'thread_name',
            ph: 'M',
            pid: 0,
            tid,
            args: { name: n },
          }));
          const file = join(runDir, `trace-rank${rank}.json`);
          writeFileSync(file, JSON.stringify({ traceEvents: [...names, ...trace] }));
          trace.length = 0;
          log(`profile: wrote ${file} (open in chrome://tracing or ui.perfetto.dev)`);
        }
      }
      const elapsed = (now - t0) / 1000;
      const done = step - startStep;
      const tokS = (done * tokensPerStep) / elapsed;
      const mfu = peak.flops ? (flopsPerTok * tokS) / (peak.flops * worldSize) : null;
      const rec: MetricsRecord = {
        step,
        loss,
        grad_norm: norm,
        lr: schedule.getLastLr()[0]!,
        tokens_per_s: tokensPerStep / ((now - ts) / 1000),
        model_flops: flopsPerTok * tokS,
        mfu,
        elapsed_s: elapsed,
        live_bytes: memoryStats('cpu').liveBytes,
        peak_bytes: memoryStats('cpu').peakBytes,
        time: new Date().toISOString(),
      };
      if (rank === 0) appendFileSync(metricsFile, `${JSON.stringify(rec)}\n`);
      reporter.step({
        step,
        totalSteps: cfg.train.steps,
        loss,
        gradNorm: norm,
        lr: rec.lr,
        tokensPerSecond: tokS,
        mfu,
        memoryBytes: rec.live_bytes,
        etaSeconds: ((end - step) * elapsed) / done,
      });
      if ((cfg.checkpoint.every > 0 && step % cfg.checkpoint.every === 0) || step === end) {
        lastGood = save(step);
        log(`checkpoint: ${lastGood}${cfg.checkpoint.async ? ' (writing in the background)' : ''}`);
      }
    }
    (pendingSave as SaveHandle | null)?.wait();
    world?.barrier().wait();
    if (cfg.checkpoint.export_hf && losses.length) log(`export: wrote a Hugging Face folder ${exportHf()}`);
    const seconds = (performance.now() - t0) / 1000;
    if (losses.length) {
      log(
        `done: steps ${startStep + 1}..${end}${end < cfg.train.steps ? ` of ${cfg.train.steps} (train.stop_after)` : ''}, loss ${losses[0]!.toFixed(4)} -> ${losses.at(-1)!.toFixed(4)} in ${seconds.toFixed(1)} s`,
      );
    } else log(`done: nothing to do (the run is at step ${startStep} of ${cfg.train.steps})`);
    return { firstStep: startStep + 1, lastStep: end, resumedFrom, losses, seconds };
  } finally {
    await data?.close();
    if (world) destroyProcessGroup();
  }
}
