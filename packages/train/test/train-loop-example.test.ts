// examples/train-loop/train.ts (the trainer-free script) runs a few steps of a tiny config on 2
// ranks, saves a dcp checkpoint and resumes from it, so that it cannot rot. Needs the packages built.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../bin/omnitrain.js', import.meta.url));
const script = fileURLToPath(new URL('../../../examples/train-loop/train.ts', import.meta.url));
const corpus = fileURLToPath(new URL('../../../examples/data/tiny-shakespeare.jsonl', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../dist/cli.js', import.meta.url)));

function run(args: string[]) {
  const env = { ...process.env };
  for (const k of ['MASTER_ADDR', 'MASTER_PORT', 'OMNITRAIN_STORE_SECRET', 'RANK', 'WORLD_SIZE']) delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith('SLURM_')) delete env[k];
  const r = spawnSync(process.execPath, [bin, 'launch', '--nproc-per-node', '2', script, ...args], {
    encoding: 'utf8',
    env,
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

describe.skipIf(!built)('examples/train-loop', () => {
  it('trains a tiny config with the data loader and dcp checkpoints, and resumes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omnitrain-loop-'));
    const cfg = join(dir, 'tiny.yaml');
    writeFileSync(
      cfg,
      `model:
  config: { model_type: qwen2, vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,
            num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true }
data: { path: ${corpus}, seq_len: 32, buffer_size: 8 }
train: { steps: 4, global_batch: 2, lr: 1.0e-2, warmup_steps: 1, log_every: 1 }
checkpoint: { every: 2, keep: 1 }
run: { dir: ${join(dir, 'run')} }
`,
    );
    const first = run([cfg, '--train.steps', '2']);
    expect(first.code, first.out).toBe(0);
    expect(first.out).toMatch(/step 1 {2}loss 5\.\d+ {2}grad norm/);
    expect(first.out).toContain(`checkpoint: ${join(dir, 'run', 'train-loop-checkpoints', 'step-2')}`);
    const second = run([cfg]);
    expect(second.code, second.out).toBe(0);
    expect(second.out).toContain('(step 2)');
    expect(second.out).toMatch(/step 4 {2}loss \d\.\d+/);
    expect(existsSync(join(dir, 'run', 'train-loop-checkpoints', 'step-4', 'metadata.json'))).toBe(true);
  }, 90_000);
});
