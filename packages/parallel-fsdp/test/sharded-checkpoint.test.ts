// Sharded checkpoints of FSDP models through @omnitrain/checkpoint's 'dcp' format (Gloo, CPU,
// separate processes for save and load): exact resume (bitwise equal losses) at world sizes 1
// and 2, and resharding (save at FSDP-4 or HSDP 2x2, load at FSDP 2, 1 or 4).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runRanks } from './helpers/spawn.js';

const runCkptRanks = (n: number, env: Record<string, string>) => runRanks(n, env, './ckpt-rank.ts');

const root = mkdtempSync(join(tmpdir(), 'fsdp-ckpt-'));
const runs: Record<string, any[]> = {};
const N = 3;

beforeAll(async () => {
  const dir = (k: string) => join(root, k);
  // Each stage's jobs run two at a time; later stages load what earlier ones saved.
  const stages: [string, number, Record<string, string>][][] = [
    [
      ['full1', 1, { STEPS: String(2 * N) }],
      ['save1', 1, { STEPS: String(N), SAVE_AFTER: String(N), CKPT: dir('w1') }],
      ['full2', 2, { STEPS: String(2 * N) }],
      ['save2', 2, { STEPS: String(N), SAVE_AFTER: String(N), CKPT: dir('w2'), ASYNC: '1' }],
      // Uneven dim 0 (vocab 251 over 4 ranks): saved after 2 steps, then the step the loads must match.
      ['save4', 4, { FIXTURE: 'qwen2-odd', STEPS: '3', SAVE_AFTER: '2', CKPT: dir('w4') }],
      ['saveHsdp', 4, { MESH: '2x2', STEPS: '3', SAVE_AFTER: '2', CKPT: dir('hsdp') }],
    ],
    [
      ['resume1', 1, { STEPS: String(N), RESUME: '1', CKPT: dir('w1') }],
      ['resume2', 2, { STEPS: String(N), RESUME: '1', CKPT: dir('w2') }],
      ['load4to2', 2, { FIXTURE: 'qwen2-odd', STEPS: '1', RESUME: '1', CKPT: dir('w4') }],
      ['load4to1', 1, { FIXTURE: 'qwen2-odd', STEPS: '1', RESUME: '1', CKPT: dir('w4') }],
      ['loadHsdpTo4', 4, { STEPS: '1', RESUME: '1', CKPT: dir('hsdp') }],
    ],
  ];
  for (const jobs of stages) {
    const queue = [...jobs];
    const worker = async () => {
      for (let j = queue.shift(); j; j = queue.shift()) runs[j[0]] = await runCkptRanks(j[1], j[2]);
    };
    await Promise.all([worker(), worker()]);
  }
}, 180_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('exact resume from a sharded checkpoint (model, AdamW, LR schedule, RNG, step)', () => {
  for (const w of [1, 2]) {
    it(`world ${w}: ${N} steps, save, new processes, resume, ${N} steps == ${2 * N} steps uninterrupted (bitwise)`, () => {
      const full = runs[`full${w}`]!;
      const saved = runs[`save${w}`]!;
      const resumed = runs[`resume${w}`]!;
      expect(full.length).toBe(w);
      for (let r = 0; r < w; r++) {
        expect(full[r].losses.length).toBe(2 * N);
        expect(saved[r].losses).toEqual(full[r].losses.slice(0, N));
        expect(resumed[r].startStep).toBe(N);
        // toEqual on numbers is exact (Object.is): bitwise identical float64 values.
        expect(resumed[r].losses).toEqual(full[r].losses.slice(N));
      }
      // The losses move: a resume that restored nothing would not match.
      expect(new Set(full[0].losses).size).toBe(2 * N);
    });
  }
});

describe('resharding: load under another mesh, the next step matches (1e-6 relative)', () => {
  it('FSDP-4 (uneven dim 0) → FSDP-2 and → one process', () => {
    const next = runs.save4![0].losses[2];
    for (const r of runs.save4!) expect(r.losses[2]).toBe(next);
    for (const k of ['load4to2', 'load4to1']) {
      for (const r of runs[k]!) {
        expect(r.startStep, k).toBe(2);
        expect(rel(r.losses[0], next), `${k} rank ${r.rank}`).toBeLessThan(1e-6);
      }
    }
    // A load that restored nothing would start from the initial loss, far from this one.
    expect(rel(runs.save4![0].losses[0], next)).toBeGreaterThan(1e-3);
  });

  it('HSDP 2x2 → FSDP-4', () => {
    const next = runs.saveHsdp![0].losses[2];
    for (const r of runs.loadHsdpTo4!) {
      expect(r.startStep).toBe(2);
      expect(rel(r.losses[0], next), `rank ${r.rank}`).toBeLessThan(1e-6);
    }
  });
});
