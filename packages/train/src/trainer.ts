import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  defaultRegistry,
  destroyProcessGroup,
  Generator,
  initDeviceMesh,
  initProcessGroup,
  manualSeed,
  memoryStats,
  type nn,
  noGrad,
  optim,
  type ProcessGroup,
  type Tensor,
  tensor,
  tidy,
} from '@omnitrain/core';
import { type CausalLM, createModel, fromPretrained, saveToPretrained } from '@omnitrain/models';
import type { TrainConfig } from './config.js';

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
  /** Achieved model FLOP/s estimate, 6 × parameters × tokens/s (attention not counted). */
  model_flops: number;
  elapsed_s: number;
  live_bytes: number;
  time: string;
}

/** Read the whole text of the configured JSONL corpus as bytes (one record per line, '\n'-joined). */
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

/** Rows `[from, to)` of step `step`'s global batch: random windows of `seq` bytes, the same on every rank. */
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

const STEP_DIR = /^step-(\d{8})$/;

/** Complete checkpoints of a run folder, oldest first. */
export function listCheckpoints(runDir: string): { step: number; dir: string }[] {
  const root = join(runDir, 'checkpoints');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((n) => ({ m: STEP_DIR.exec(n), n }))
    .filter((x) => x.m && existsSync(join(root, x.n, 'COMPLETE')))
    .map((x) => ({ step: Number(x.m![1]), dir: join(root, x.n) }))
    .sort((a, b) => a.step - b.step);
}

function writeOptimizerState(file: string, sd: optim.OptimizerStateDict): void {
  const chunks: Buffer[] = [];
  let offset = 0;
  const state: Record<string, Record<string, unknown>> = {};
  for (const [id, s] of Object.entries(sd.state)) {
    state[id] = {};
    for (const [k, v] of Object.entries(s)) {
      if (v && typeof v === 'object' && 'toTypedArray' in (v as object)) {
        const t = v as Tensor;
        const a = Float32Array.from(t.toTypedArray() as ArrayLike<number>);
        chunks.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
        state[id]![k] = { $tensor: { shape: t.shape, offset, length: a.length } };
        offset += a.byteLength;
      } else state[id]![k] = v;
    }
  }
  writeFileSync(`${file}.bin`, Buffer.concat(chunks));
  writeFileSync(`${file}.json`, JSON.stringify({ state, paramGroups: sd.paramGroups }));
}

function readOptimizerState(file: string): { sd: optim.OptimizerStateDict; tensors: Tensor[] } {
  const bin = readFileSync(`${file}.bin`);
  const meta = JSON.parse(readFileSync(`${file}.json`, 'utf8'));
  const tensors: Tensor[] = [];
  for (const s of Object.values(meta.state) as Record<string, unknown>[]) {
    for (const [k, v] of Object.entries(s)) {
      const d = (v as { $tensor?: { shape: number[]; offset: number; length: number } } | null)?.$tensor;
      if (!d) continue;
      const a = new Float32Array(d.length);
      Buffer.from(a.buffer).set(bin.subarray(d.offset, d.offset + d.length * 4));
      const t = tensor(a, { shape: d.shape });
      tensors.push(t);
      s[k] = t;
    }
  }
  return { sd: meta as optim.OptimizerStateDict, tensors };
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

async function usePlugins(cfg: TrainConfig, log: (s: string) => void): Promise<void> {
  const r = defaultRegistry();
  if (cfg.kernels.cpu === 'native') {
    const k = await import('@omnitrain/kernels-cpu');
    const st = k.nativeStatus();
    if (st.available) r.use(k.plugin);
    log(`kernels: ${st.available ? st.message : `core reference (${st.message})`}`);
  } else log('kernels: core reference (kernels.cpu = reference)');
  const ckpt = await import('@omnitrain/checkpoint');
  if (!r.checkpointFormats.has('hf-safetensors')) r.use(ckpt.plugin);
  if (!r.checkpointFormats.has(cfg.checkpoint.format)) {
    throw new Error(
      `checkpoint.format '${cfg.checkpoint.format}' is not installed; installed formats: ${r.checkpointFormats.names().join(', ')}`,
    );
  }
  if (cfg.checkpoint.format !== 'hf-safetensors') {
    throw new Error(
      `checkpoint.format '${cfg.checkpoint.format}' is installed but omnitrain train writes weights only as 'hf-safetensors' (gathered on rank 0)`,
    );
  }
}

/**
 * Run the training loop of `cfg` in this process: one rank of a launched job when WORLD_SIZE is
 * set (FSDP over the configured mesh), otherwise alone. Resumes from the run folder's latest
 * complete checkpoint when `checkpoint.resume` is 'auto'.
 */
export async function runTraining(cfg: TrainConfig, io: TrainIO): Promise<TrainResult> {
  const env = io.env ?? process.env;
  const worldSize = Number(env.WORLD_SIZE ?? 1);
  const envRank = Number(env.RANK ?? 0);
  const log = (s: string) => {
    if (envRank === 0) io.stdout.write(`${s}\n`);
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
  try {
    const modelCfg = cfg.model.pretrained
      ? JSON.parse(readFileSync(join(cfg.model.pretrained, 'config.json'), 'utf8'))
      : cfg.model.config!;
    manualSeed(cfg.train.seed);
    const model: CausalLM = cfg.model.pretrained ? fromPretrained(cfg.model.pretrained) : createModel(modelCfg);
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
    const vocab = Number(modelCfg.vocab_size);
    if (vocab < 256) throw new Error(`model.config.vocab_size is ${vocab}; the byte tokenizer needs >= 256`);
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
    const data = loadCorpusBytes(cfg.data.path, cfg.data.text_field);
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
    const runDir = cfg.run.dir;
    mkdirSync(join(runDir, 'checkpoints'), { recursive: true });
    const metricsFile = join(runDir, 'metrics.jsonl');

    // Resume.
    let startStep = 0;
    let resumedFrom: string | null = null;
    const latest = cfg.checkpoint.resume === 'auto' ? listCheckpoints(runDir).at(-1) : undefined;
    if (latest) {
      const trainer = JSON.parse(readFileSync(join(latest.dir, 'trainer.json'), 'utf8'));
      if (trainer.world_size !== worldSize) {
        throw new Error(
          `resume ${latest.dir}: saved by ${trainer.world_size} ranks, this run has ${worldSize} (the optimizer state is per rank)`,
        );
      }
      const saved = fromPretrained(join(latest.dir, 'model'));
      const sd = saved.stateDict();
      if (fsdp) fsdp.loadFullStateDict(model, sd);
      else model.loadStateDict(sd);
      saved.dispose();
      const { sd: osd, tensors } = readOptimizerState(join(latest.dir, `optim-rank${rank}`));
      opt.loadStateDict(osd);
      for (const t of tensors) t.dispose();
      schedule.loadStateDict(trainer.scheduler);
      startStep = latest.step;
      resumedFrom = latest.dir;
      log(`resumed from ${latest.dir} (step ${startStep})`);
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

    const saveCheckpoint = (step: number) => {
      const dir = join(runDir, 'checkpoints', `step-${String(step).padStart(8, '0')}`);
      const full = fsdp ? fsdp.fullStateDict(model) : null;
      if (rank === 0) {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true });
        if (full) {
          const copy = createModel(modelCfg);
          copy.loadStateDict(full);
          saveToPretrained(copy, join(dir, 'model'));
          copy.dispose();
        } else saveToPretrained(model, join(dir, 'model'));
      }
      if (full) for (const t of new Set(Object.values(full))) t.dispose();
      world?.barrier().wait();
      writeOptimizerState(join(dir, `optim-rank${rank}`), opt.stateDict());
      world?.barrier().wait();
      if (rank === 0) {
        writeFileSync(
          join(dir, 'trainer.json'),
          JSON.stringify({ step, world_size: worldSize, scheduler: schedule.stateDict(), config: cfg }, null, 2),
        );
        writeFileSync(join(dir, 'COMPLETE'), `${new Date().toISOString()}\n`);
        const all = listCheckpoints(runDir);
        for (const old of all.slice(0, Math.max(0, all.length - cfg.checkpoint.keep))) {
          rmSync(old.dir, { recursive: true, force: true });
        }
      }
      world?.barrier().wait();
      return dir;
    };

    log(
      `model: ${modelCfg.model_type}, ${nParams.toLocaleString()} parameters; data: ${data.length.toLocaleString()} bytes; ` +
        `global batch ${cfg.train.global_batch} × seq ${seq}; steps ${startStep + 1}..${cfg.train.steps}; run folder ${runDir}`,
    );
    const t0 = performance.now();
    const losses: number[] = [];
    let lastGood: string | null = latest?.dir ?? null;
    const tty = io.stdout.isTTY === true && rank === 0;
    const end = cfg.train.stop_after > 0 ? Math.min(cfg.train.steps, cfg.train.stop_after) : cfg.train.steps;
    for (let step = startStep + 1; step <= end; step++) {
      tracing = step <= startStep + cfg.train.profile;
      const ts = performance.now();
      const rows = batchRows(
        data,
        step,
        cfg.train.seed,
        cfg.train.global_batch,
        seq,
        dpRank * local,
        (dpRank + 1) * local,
      );
      let loss = tidy(() => {
        const x = tensor(rows, { dtype: 'int32', shape: [local, seq] });
        const l = model.call(x, { labels: x }).loss!;
        l.backward();
        return l.item();
      });
      const tb = performance.now();
      const norm = fsdp
        ? fsdp.clipGradNorm(model as nn.Module, cfg.train.max_grad_norm)
        : optim.clipGradNorm(model.parameters(), cfg.train.max_grad_norm);
      if (world) {
        const t = tensor([loss], { dtype: 'float64' });
        world.allReduce(t, 'avg').wait();
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
      const tokS = (done * cfg.train.global_batch * seq) / elapsed;
      const rec: MetricsRecord = {
        step,
        loss,
        grad_norm: norm,
        lr: schedule.getLastLr()[0]!,
        tokens_per_s: (cfg.train.global_batch * seq) / ((now - ts) / 1000),
        model_flops: 6 * nParams * tokS,
        elapsed_s: elapsed,
        live_bytes: memoryStats('cpu').liveBytes,
        time: new Date().toISOString(),
      };
      if (rank === 0) appendFileSync(metricsFile, `${JSON.stringify(rec)}\n`);
      const eta = ((end - step) * elapsed) / done;
      const mem = `${(rec.live_bytes / 2 ** 20).toFixed(1)} MiB`;
      if (tty) {
        const w = 24;
        const fill = Math.round((w * step) / cfg.train.steps);
        io.stdout.write(
          `\r[${'#'.repeat(fill)}${'.'.repeat(w - fill)}] step ${step}/${cfg.train.steps} loss ${loss.toFixed(4)} ` +
            `gnorm ${norm.toFixed(3)} ${tokS.toFixed(0)} tok/s ${(rec.model_flops / 1e9).toFixed(2)} GFLOP/s mem ${mem} ETA ${fmtDuration(eta)}   `,
        );
        if (step === end) io.stdout.write('\n');
      } else if (step % cfg.train.log_every === 0 || step === end || step === startStep + 1) {
        log(
          `step ${String(step).padStart(5)}/${cfg.train.steps}  loss ${loss.toFixed(4)}  grad norm ${norm.toFixed(3)}  ` +
            `lr ${rec.lr.toExponential(2)}  ${tokS.toFixed(0)} tok/s  ${(rec.model_flops / 1e9).toFixed(2)} GFLOP/s  mem ${mem}  ETA ${fmtDuration(eta)}`,
        );
      }
      if ((cfg.checkpoint.every > 0 && step % cfg.checkpoint.every === 0) || step === end) {
        lastGood = saveCheckpoint(step);
        if (tty) io.stdout.write('\n');
        log(`checkpoint: ${lastGood}`);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    if (losses.length) {
      log(
        `done: steps ${startStep + 1}..${end}${end < cfg.train.steps ? ` of ${cfg.train.steps} (train.stop_after)` : ''}, loss ${losses[0]!.toFixed(4)} -> ${losses.at(-1)!.toFixed(4)} in ${seconds.toFixed(1)} s`,
      );
    } else log(`done: nothing to do (the run is at step ${startStep} of ${cfg.train.steps})`);
    return { firstStep: startStep + 1, lastStep: end, resumedFrom, losses, seconds };
  } finally {
    if (world) destroyProcessGroup();
  }
}
