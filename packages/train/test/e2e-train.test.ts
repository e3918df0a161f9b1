// End to end: the built `omnitrain` command trains a tiny Qwen2 over 2 ranks (FSDP over Gloo),
// checkpoints, resumes, plots and generates. Needs the package built (CI runs `pnpm -r build` first).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveToPretrained } from '@omnitrain/models';
import { loadForGeneration } from '@omnitrain/train';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../bin/omnitrain.js', import.meta.url));
const corpus = fileURLToPath(new URL('../../../examples/data/tiny-shakespeare.jsonl', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../dist/cli.js', import.meta.url)));

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const k of Object.keys(env)) {
    if (
      k.startsWith('SLURM_') ||
      ['MASTER_ADDR', 'MASTER_PORT', 'OMNITRAIN_STORE_SECRET', 'RANK', 'WORLD_SIZE'].includes(k)
    )
      delete env[k];
  }
  return env;
}

function omnitrain(args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: cleanEnv(extra), timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function metrics(dir: string): { step: number; loss: number; grad_norm: number; tokens_per_s: number }[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

const CONFIG = `
model:
  config:
    model_type: qwen2
    vocab_size: 259
    hidden_size: 32
    intermediate_size: 64
    num_hidden_layers: 2
    num_attention_heads: 4
    num_key_value_heads: 2
    max_position_embeddings: 64
    tie_word_embeddings: true
  init_embedding_std: 0.05
data:
  path: ${corpus}
  seq_len: 16
  buffer_size: 8
train:
  steps: 6
  global_batch: 4
  lr: 1.0e-2
  warmup_steps: 2
  log_every: 1
checkpoint:
  every: 2
  keep: 2
`;

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh folder holding the tiny config (`cfg`) and the path of a run folder in it (`run`). */
function tinyRun(name: string): { dir: string; cfg: string; run: string } {
  const dir = mkdtempSync(join(tmpdir(), `omnitrain-${name}-`));
  tmpDirs.push(dir);
  const cfg = join(dir, 'tiny.yaml');
  writeFileSync(cfg, CONFIG);
  return { dir, cfg, run: join(dir, 'run') };
}

describe.skipIf(!built)('omnitrain train (2 ranks, FSDP over Gloo)', () => {
  it('trains, checkpoints (dcp) every N keeping K, resumes exactly where an uninterrupted run would be (2 ranks, and 1), plots, generates', () => {
    const { dir, cfg, run } = tinyRun('e2e');
    // The schedule spans 10 steps; this run stops after 6 (as a preempted job would).
    const first = omnitrain([
      'train',
      cfg,
      '--nproc-per-node',
      '2',
      '--run.dir',
      run,
      '--train.steps',
      '10',
      '--train.stop_after',
      '6',
      '--profile',
    ]);
    expect(first.err + first.out).toContain('fsdp over gloo, world 2');
    expect(first.code).toBe(0);
    expect(readdirSync(join(run, 'checkpoints')).sort()).toEqual(['latest', 'step-4', 'step-6']);
    const ck = join(run, 'checkpoints', 'step-6');
    for (const f of ['metadata.json', 'rank-00000.bin', 'rank-00001.bin'])
      expect(existsSync(join(ck, f)), f).toBe(true);
    const meta = JSON.parse(readFileSync(join(ck, 'metadata.json'), 'utf8'));
    // Model and optimizer rows of both ranks, schedule, data lanes, RNG and step.
    expect(meta.tensors['model.model.embed_tokens.weight'].chunks).toHaveLength(2);
    expect(Object.keys(meta.tensors).some((n) => n.startsWith('optim.state.') && n.endsWith('expAvgSq'))).toBe(true);
    expect(Object.keys(meta.states[0])).toEqual(
      expect.arrayContaining(['model', 'optim', 'schedule', 'data', 'rng', 'step', 'meta']),
    );
    expect(Object.keys(meta.states[1].data.lanes)).toEqual(['2', '3']);
    const oneRank = join(dir, 'one-rank');
    cpSync(run, oneRank, { recursive: true });
    // --profile: a Chrome trace per rank, compute and communication on separate tracks.
    for (const r of [0, 1]) {
      const ev = JSON.parse(readFileSync(join(run, `trace-rank${r}.json`), 'utf8')).traceEvents as {
        name: string;
        tid: number;
        ph: string;
      }[];
      expect(ev.filter((e) => e.ph === 'X' && e.name.startsWith('step ')).map((e) => e.name)).toEqual([
        'step 1',
        'step 2',
        'step 3',
      ]);
      expect(ev.some((e) => e.tid === 2 && e.name.startsWith('reduce-scatter'))).toBe(true);
      expect(ev.some((e) => e.tid === 2 && e.name.startsWith('all-gather'))).toBe(true);
      expect(ev.some((e) => e.tid === 1 && e.name === 'forward + backward')).toBe(true);
    }
    const m1 = metrics(run);
    expect(m1.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const r of m1) expect(Number.isFinite(r.loss) && r.grad_norm > 0 && r.tokens_per_s > 0).toBe(true);
    expect(m1[0]!.loss).toBeGreaterThan(5); // ~ln 256 = 5.55 at the start

    // Resume: continue to step 10 (the latest checkpoint is step 6).
    const second = omnitrain([
      'train',
      cfg,
      '--nproc-per-node',
      '2',
      '--run.dir',
      run,
      '--train.steps',
      '10',
      '--checkpoint.export_hf',
      'true',
    ]);
    expect(second.code).toBe(0);
    expect(second.out).toContain(`resumed from ${ck} (step 6)`);
    const m2 = metrics(run);
    expect(m2.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(m2.slice(0, 6)).toEqual(m1);

    // The same 10 steps uninterrupted give the same losses: the resumed run continues the curve exactly.
    // (async saves: the same numbers.)
    const straight = join(dir, 'straight');
    const s3 = omnitrain([
      'train',
      cfg,
      '--nproc-per-node',
      '2',
      '--run.dir',
      straight,
      '--train.steps',
      '10',
      '--checkpoint.async',
      'true',
    ]);
    expect(s3.code).toBe(0);
    const m3 = metrics(straight);
    expect(m3.map((r) => r.loss)).toEqual(m2.map((r) => r.loss));
    expect(m3.at(-1)!.loss).toBeLessThan(m3[0]!.loss - 0.3);

    // Resume the 2-rank checkpoint on 1 rank: resharded; the next loss matches to float32 rounding.
    const one = omnitrain(['train', cfg, '--run.dir', oneRank, '--train.steps', '10', '--train.stop_after', '7']);
    expect(one.code).toBe(0);
    expect(one.out).toContain('(step 6, saved by 2 ranks, resharded to 1)');
    const m4 = metrics(oneRank);
    expect(m4.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(Math.abs(m4[6]!.loss - m3[6]!.loss) / m3[6]!.loss).toBeLessThan(1e-6);

    const plot = omnitrain(['plot', run]);
    expect(plot.code).toBe(0);
    const png = readFileSync(join(run, 'plot.png'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(800);
    expect(png.length).toBeGreaterThan(1000);

    const gen = omnitrain(['generate', '--checkpoint', run, '--prompt', 'ROMEO:', '--max-new-tokens', '10']);
    expect(gen.code).toBe(0);
    expect(gen.out).toContain(`[model ${join(run, 'checkpoints', 'step-10')}]`); // read from the dcp checkpoint
    expect(gen.out).toContain('ROMEO:');
    const fromHf = omnitrain([
      'generate',
      '--checkpoint',
      join(run, 'hf'),
      '--prompt',
      'ROMEO:',
      '--max-new-tokens',
      '10',
    ]);
    expect(fromHf.code).toBe(0);
    expect(fromHf.out.split('\n').slice(1)).toEqual(gen.out.split('\n').slice(1)); // the export holds the same weights
  }, 90_000);

  it("exports Hugging Face weights from each rank's rows (bitwise a 1-process saveToPretrained); 2 ranks start from the folder like 1", () => {
    const { dir, cfg, run } = tinyRun('hf');
    const r = omnitrain([
      'train',
      cfg,
      '--nproc-per-node',
      '2',
      '--run.dir',
      run,
      '--train.steps',
      '3',
      '--checkpoint.export_hf',
      'true',
      '--checkpoint.async',
      'true',
    ]);
    expect(r.err + r.out).toContain('fsdp over gloo, world 2');
    expect(r.code).toBe(0);
    // Reference: the final checkpoint loaded into this one process, written by saveToPretrained.
    const { model } = loadForGeneration(join(run, 'checkpoints', 'step-3'));
    const ref = join(dir, 'ref');
    try {
      saveToPretrained(model, ref);
    } finally {
      model.dispose();
    }
    const hf = join(run, 'hf');
    expect(readdirSync(hf).sort()).toEqual(readdirSync(ref).sort());
    for (const f of readdirSync(ref))
      expect(readFileSync(join(hf, f)).equals(readFileSync(join(ref, f))), f).toBe(true);

    // Start from the exported folder: 2 ranks (each reads its rows) and 1 rank give the same first loss.
    const from = (n: number) => {
      const out = join(dir, `from-hf-${n}`);
      const args = ['train', cfg, '--run.dir', out, '--model.pretrained', hf, '--train.steps', '1'];
      // The 1-rank run also exports (no FSDP: the same writer, one process).
      const res = omnitrain(
        n > 1 ? [...args, '--nproc-per-node', String(n)] : [...args, '--checkpoint.export_hf', 'true'],
      );
      expect(res.code, res.err).toBe(0);
      return { out: res.out, loss: metrics(out)[0]!.loss };
    };
    const two = from(2);
    const one = from(1);
    expect(two.out).toContain("loaded this rank's rows of");
    expect(Math.abs(two.loss - one.loss) / one.loss).toBeLessThan(1e-6);
    expect(readdirSync(join(dir, 'from-hf-1', 'hf')).sort()).toEqual(['config.json', 'model.safetensors']);
  }, 90_000);

  it('a NaN loss stops the run naming the step and the last good checkpoint; skip mode skips it', () => {
    const { dir, cfg, run } = tinyRun('nan');
    const r = omnitrain(['train', cfg, '--run.dir', run, '--parallel.strategy', 'none'], {
      OMNITRAIN_FAULT_NAN_STEP: '5',
    });
    expect(r.code).toBe(3);
    expect(r.err).toContain(
      `step 5: loss is NaN; run stopped. Last good checkpoint: ${join(run, 'checkpoints', 'step-4')}`,
    );
    const s = omnitrain(
      ['train', cfg, '--run.dir', join(dir, 'skip'), '--parallel.strategy', 'none', '--train.on_nonfinite', 'skip'],
      {
        OMNITRAIN_FAULT_NAN_STEP: '3',
      },
    );
    expect(s.code).toBe(0);
    expect(s.out).toContain('step 3: loss is NaN; step skipped');
    expect(metrics(join(dir, 'skip')).map((m) => m.step)).toEqual([1, 2, 4, 5, 6]);
  }, 60_000);

  it('config errors and unknown plugins are reported before anything starts', () => {
    const { dir, cfg } = tinyRun('bad');
    const bad = omnitrain(['train', cfg, '--train.lr', 'abc']);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(`omnitrain train: command line: 'train.lr' is "abc"; allowed: a number > 0 and <= 10\n`);
    const fmt = omnitrain(['train', cfg, '--run.dir', join(dir, 'r'), '--checkpoint.format', 'zip']);
    expect(fmt.code).toBe(1);
    expect(fmt.err).toMatch(
      /checkpoint\.format 'zip' is not installed; installed formats: .*hf-safetensors.*dcp|dcp.*hf-safetensors/,
    );
    const hf = omnitrain(['train', cfg, '--run.dir', join(dir, 'r'), '--checkpoint.format', 'hf-safetensors']);
    expect(hf.code).toBe(1);
    expect(hf.err).toContain('set checkpoint.export_hf: true');
  });
});
