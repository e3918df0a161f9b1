import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findLatestCheckpoint,
  releaseSaveBuffer,
  reserveSaveBuffer,
  resumeCheckpoint,
  saveCheckpoint,
  waitForPendingSave,
} from '@omnitrain/checkpoint';
import {
  add,
  defaultGenerator,
  manualSeed,
  matmul,
  mean,
  mul,
  noGrad,
  optim,
  randn,
  type Tensor,
  tidy,
  writeValues,
} from '@omnitrain/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesOf } from './dcp-helpers/data.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dcp-state-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A tiny training run: AdamW + warmup/cosine schedule, inputs drawn from the default generator. */
function makeRun(seed: number) {
  manualSeed(seed);
  const w = randn([8, 4]).requiresGrad_();
  const b = randn([4]).requiresGrad_();
  const opt = new optim.AdamW([w, b], { lr: 0.01, weightDecay: 0.1 });
  const sched = optim.cosineSchedule(opt, { warmupSteps: 2, totalSteps: 20 });
  const data = { source: 'packed', position: 0, epoch: 0, buffer: [] as number[] };
  const step = (): number => {
    const loss = tidy(() => {
      const x = randn([5, 8]);
      const y = add(matmul(x, w), b);
      const l = mean(mul(y, y));
      l.backward();
      return l;
    });
    const v = loss.item();
    loss.dispose();
    opt.step();
    sched.step();
    opt.zeroGrad();
    data.position += 5;
    data.buffer = [data.position % 7, 3];
    return v;
  };
  const state = () => ({
    model: { w, b },
    optim: opt.stateDict(),
    sched: sched.stateDict(),
    rng: defaultGenerator().getState(),
    data,
  });
  return { w, b, opt, sched, data, step, state };
}

describe('dcp: the whole training state', () => {
  it('model + optimizer + scheduler + RNG + data state round-trip exactly: resumed losses are bitwise equal', () => {
    const root = join(dir, 'exact');
    const a = makeRun(7);
    for (let i = 0; i < 3; i++) a.step();
    saveCheckpoint(root, 3, { ...a.state(), step: 3 });
    const want = [a.step(), a.step(), a.step()];
    const wantW = bytesOf(a.w);

    const r = makeRun(99); // different init and RNG: everything must come from the checkpoint
    const res = resumeCheckpoint(root, { model: { w: r.w, b: r.b } });
    expect(res?.step).toBe(3);
    const st = res!.state as any;
    expect(st.step).toBe(3);
    r.opt.loadStateDict(st.optim);
    r.sched.loadStateDict(st.sched);
    defaultGenerator().setState(st.rng);
    Object.assign(r.data, st.data);
    expect(r.sched.getLastLr()).toEqual(a.opt.paramGroups.map(() => st.optim.paramGroups[0].lr));
    const got = [r.step(), r.step(), r.step()];
    expect(got).toEqual(want);
    expect(bytesOf(r.w)).toEqual(wantW);
    expect(r.data).toEqual(a.data);
    for (const t of Object.values(st.optim.state[0]) as Tensor[]) if (t?.isTensor) t.dispose();
    for (const t of Object.values(st.optim.state[1]) as Tensor[]) if (t?.isTensor) t.dispose();
  });

  it('resume: auto with no checkpoint is a fresh start (null)', () => {
    expect(resumeCheckpoint(join(dir, 'none'), {})).toBeNull();
    expect(findLatestCheckpoint(join(dir, 'none'))).toBeNull();
  });

  it('async save writes the same bytes as a sync save, from a host copy taken before it returns', () => {
    const a = makeRun(3);
    for (let i = 0; i < 2; i++) a.step();
    saveCheckpoint(join(dir, 'sync'), 2, a.state(), { blockBytes: 128 });
    const h = saveCheckpoint(join(dir, 'async'), 2, a.state(), { async: true, blockBytes: 128 });
    // Training goes on at once: change the live tensors while the background write runs.
    noGrad(() => writeValues(a.w, new Array(32).fill(0)));
    h.wait();
    expect(h.done).toBe(true);
    for (const f of ['rank-00000.bin', 'metadata.json']) {
      expect(readFileSync(join(dir, 'async/step-2', f)), f).toEqual(readFileSync(join(dir, 'sync/step-2', f)));
    }
    // The next save waits for the previous one; keep = 2 prunes the oldest.
    for (const s of [3, 4, 5]) saveCheckpoint(join(dir, 'async'), s, a.state(), { async: true, keep: 2 });
    waitForPendingSave();
    expect(findLatestCheckpoint(join(dir, 'async'))?.step).toBe(5);
    expect(readFileSync(join(dir, 'async/latest'), 'utf8').trim()).toBe('step-5');
  });

  it('back-to-back async saves reuse one host buffer: each step holds its own values, bitwise a sync save', () => {
    const a = makeRun(4);
    reserveSaveBuffer(1 << 16);
    for (const s of [1, 2, 3, 4]) {
      a.step();
      saveCheckpoint(join(dir, 'reuse-sync'), s, a.state(), { blockBytes: 96, keep: 10 });
      saveCheckpoint(join(dir, 'reuse-async'), s, a.state(), { async: true, blockBytes: 96, keep: 10 });
      // The next a.step() changes the weights while this save may still be writing from the buffer.
      if (s === 2) releaseSaveBuffer(); // the next one allocates a fresh buffer
    }
    waitForPendingSave();
    for (const s of [1, 2, 3, 4]) {
      for (const f of ['rank-00000.bin', 'metadata.json']) {
        const got = readFileSync(join(dir, `reuse-async/step-${s}`, f));
        expect(got.equals(readFileSync(join(dir, `reuse-sync/step-${s}`, f))), `step ${s} ${f}`).toBe(true);
      }
    }
  });
});
