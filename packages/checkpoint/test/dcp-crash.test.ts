import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findLatestCheckpoint, loadCheckpoint, verifyCheckpoint } from '@omnitrain/checkpoint';
import { empty } from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleChild } from './dcp-helpers/bundle.js';
import { block, bytesOf, SPECS, setPath } from './dcp-helpers/data.js';

// A child process saves checkpoints back to back (resuming from the newest one on start); the test
// SIGKILLs it at a random moment while it saves, 24 times. After every kill the newest complete
// checkpoint must load, hold exactly the tensors of its step, and pass a full checksum scan.
const KILLS = 24;

describe('dcp crash consistency', () => {
  let child: string;
  let root: string;
  beforeAll(async () => {
    child = await bundleChild();
    root = mkdtempSync(join(tmpdir(), 'dcp-crash-'));
  }, 60_000);
  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(join(child, '..'), { recursive: true, force: true });
  });

  it(`after ${KILLS} SIGKILLs at random points of a save, the last complete checkpoint loads intact`, async () => {
    const rng = makeSeeded(1234);
    let lastSaved = 0;
    let interrupted = 0;
    for (let k = 0; k < KILLS; k++) {
      let lastBegun = 0;
      let savedThisChild = false;
      const proc = spawn(process.execPath, [child], {
        env: { ...process.env, SCENARIO: 'crash', ROOT: root, SLOW_MS: '2' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      proc.stderr.on('data', (d) => (err += d));
      const target = 1 + Math.floor(rng() * 3); // kill during this child's 1st..3rd save
      const delay = Math.floor(rng() * 90);
      let begins = 0;
      const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
      await new Promise<void>((resolve) => {
        proc.stdout.on('data', (d) => {
          out += d;
          const lines = out.split('\n');
          out = lines.pop()!;
          for (const l of lines) {
            const [what, n] = l.split(' ');
            if (what === 'SAVED') {
              lastSaved = Number(n);
              savedThisChild = true;
            }
            if (what === 'BEGIN') {
              lastBegun = Number(n);
              if (++begins === target) setTimeout(resolve, delay);
            }
          }
        });
        proc.on('exit', () => resolve());
      });
      proc.kill('SIGKILL');
      await exited;
      expect(err, `child ${k} stderr`).toBe('');
      const latest = findLatestCheckpoint(root);
      if (latest === null) {
        // Killed during the very first save: nothing was committed, and nothing claims to be.
        expect(lastSaved, `kill ${k}`).toBe(0);
        interrupted++;
        continue;
      }
      const step = latest!.step;
      // The commit (rename) may have happened just before the kill, before SAVED was printed.
      expect([lastSaved, lastBegun], `kill ${k}: newest step ${step}`).toContain(step);
      if (step !== lastBegun || existsSync(join(root, `step-${lastBegun}.tmp`))) interrupted++;
      const targets: Record<string, unknown> = {};
      const full = new Map(SPECS.map((s) => [s.name, empty(s.shape, { dtype: s.dtype })]));
      for (const s of SPECS) setPath(targets, s.name, full.get(s.name));
      const res = loadCheckpoint(latest!.dir, targets);
      expect((res.state as any).step).toBe(step);
      expect((res.state as any).data).toEqual({ cursor: step * 10 });
      for (const s of SPECS) {
        expect(bytesOf(full.get(s.name)!), `${s.name} at step ${step}`).toEqual(
          bytesOf(
            block(
              s,
              s.shape.map(() => 0),
              s.shape,
              step,
            ),
          ),
        );
      }
      expect(verifyCheckpoint(latest!.dir)).toBeGreaterThan(0);
      const completed = savedThisChild && step === lastSaved; // the save of `step` ran to its end
      lastSaved = step; // the next child resumes from it
      // keep = 2: any save that ran to its end pruned the older ones (a kill between the commit and
      // the pruning leaves one more, removed by the next complete save).
      const dirs = readdirSync(root).filter((e) => /^step-\d+$/.test(e));
      if (savedThisChild) expect(dirs.length, `kill ${k}: ${dirs}`).toBeLessThanOrEqual(completed ? 2 : 3);
      // `latest` (written after the commit) always names a complete checkpoint, at most one commit behind.
      if (existsSync(join(root, 'latest'))) {
        const pointer = readFileSync(join(root, 'latest'), 'utf8').trim();
        expect(existsSync(join(root, pointer, 'metadata.json')), `kill ${k}: latest -> ${pointer}`).toBe(true);
        expect(Number(pointer.slice(5))).toBeLessThanOrEqual(step);
      }
    }
    // Most kills must really have landed inside a save (otherwise the test shows nothing).
    expect(interrupted).toBeGreaterThanOrEqual(KILLS / 2);
  }, 80_000);
});

/** mulberry32: a fixed sequence of kill points. */
function makeSeeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
