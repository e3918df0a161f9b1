// FSDP on Gloo (CPU), 1/2/4 ranks and HSDP 2×2, against one process without FSDP (same global
// batch, same counter-based init): per-step loss and gradient norm, gathered state dicts,
// meta-device init, bf16 mixed precision, memory per rank, prefetch overlap, and bad input.
// The rank runs are shared between the tests (each process start costs ~1-2 s).
import { beforeAll, describe, expect, it } from 'vitest';
import { relErr, runRanks } from './helpers/spawn.js';

const base = { STEPS: '20', GB: '8', STATE_DICT: '1' };
const moe = { ...base, MODEL: 'qwen3_moe', AUX: '1' };
const mem = { STEPS: '2', GB: '4', SEQ: '32', HIDDEN: '64', LAYERS: '8' };
type Run = any[];
const runs: Record<string, Run> = {};

beforeAll(async () => {
  const jobs: [string, number, Record<string, string>][] = [
    ['ref', 1, { ...base, PLAIN: '1' }],
    ['w1', 1, base],
    ['w2', 2, { ...base, MICRO: '2', TRACE: '1' }],
    ['w4meta', 4, { ...base, META: '1' }],
    ['hsdp', 4, { ...base, MESH: '2x2', MICRO: '2', TRACE: '1', PREFETCH: '0' }],
    ['bf16', 2, { ...base, MP: 'bf16' }],
    // MoE with the router load-balancing loss on. HF computes it per device (not linear in the
    // batch), so the reference for N data-parallel ranks is one process with N micro-batches.
    ['moeRef', 1, { ...moe, PLAIN: '1', MICRO: '2' }],
    ['moeRef4', 1, { ...moe, PLAIN: '1', MICRO: '4' }],
    ['moe2', 2, moe],
    ['moeHsdp', 4, { ...moe, MESH: '2x2' }],
    ['errors', 2, { SCENARIO: 'errors' }],
    ['rootOnly', 2, { ...base, ROOT_ONLY: '1' }],
    ['noReshard', 2, { ...base, NORESHARD: '1' }],
    // Uneven dim 0 everywhere (vocab 251, hidden 144 over 3 ranks): padded shards.
    ['oddRef', 1, { ...base, STEPS: '3', FIXTURE: 'qwen2-odd', GB: '6', PLAIN: '1' }],
    ['odd3', 3, { ...base, STEPS: '3', FIXTURE: 'qwen2-odd', GB: '6' }],
    // Peak memory with reshardAfterForward on / off: 8 blocks, hidden 64, 2 × 32 tokens per rank.
    ['memOn', 2, mem],
    ['memOff', 2, { ...mem, NORESHARD: '1' }],
  ];
  // Two jobs at a time: enough to keep 2 cores busy without oversubscribing.
  const queue = [...jobs];
  const worker = async () => {
    for (let j = queue.shift(); j; j = queue.shift()) runs[j[0]] = await runRanks(j[1], j[2]);
  };
  await Promise.all([worker(), worker()]);
}, 480_000);

const close = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('fsdp parity with one process (float32, 1e-5)', () => {
  it('qwen2: world 1, 2 (2 micro-batches), 4 (meta init), HSDP 2x2 (2 micro-batches), root-only unit, no reshard', () => {
    const ref = runs.ref![0];
    expect(ref.losses.length).toBe(20);
    expect(ref.losses.at(-1)).toBeLessThan(ref.losses[0]); // it trains
    // rootOnly: fullyShard on the model alone; noReshard: reshardAfterForward false.
    for (const k of ['w1', 'w2', 'w4meta', 'hsdp', 'rootOnly', 'noReshard']) {
      expect(runs[k]!.length).toBe(k === 'w1' ? 1 : k.startsWith('w4') || k === 'hsdp' ? 4 : 2);
      for (const r of runs[k]!) {
        expect(relErr(r.losses, ref.losses), `${k} rank ${r.rank} loss`).toBeLessThan(1e-5);
        expect(relErr(r.norms, ref.norms), `${k} rank ${r.rank} grad norm`).toBeLessThan(1e-5);
        // fullStateDict after training equals the unsharded model's weights (weighted checksum).
        expect(close(r.checksum, ref.checksum), `${k} rank ${r.rank} state dict`).toBeLessThan(1e-5);
      }
    }
  });

  it('uneven dim 0 (vocab 251 over 3 ranks, padded Shard(0)) matches too', () => {
    const ref = runs.oddRef![0];
    expect(runs.odd3!.length).toBe(3);
    for (const r of runs.odd3!) {
      expect(relErr(r.losses, ref.losses)).toBeLessThan(1e-5);
      expect(relErr(r.norms, ref.norms)).toBeLessThan(1e-5);
      expect(close(r.checksum, ref.checksum)).toBeLessThan(1e-5);
    }
  });

  it('meta-device init materialised shard by shard equals a one-process init (first loss)', () => {
    for (const r of runs.w4meta!) expect(close(r.losses[0], runs.ref![0].losses[0])).toBeLessThan(1e-6);
  });

  it('qwen3_moe with the router aux loss: world 2 and HSDP 2x2 (vs 2 and 4 micro-batches)', () => {
    for (const [k, refKey] of [
      ['moe2', 'moeRef'],
      ['moeHsdp', 'moeRef4'],
    ] as const) {
      // The aux loss is really on: it makes the loss depend on how the batch is split.
      expect(relErr(runs.moeRef4![0].losses, runs.moeRef![0].losses)).toBeGreaterThan(1e-5);
      const ref = runs[refKey]![0];
      expect(ref.losses.at(-1)).toBeLessThan(ref.losses[0]);
      for (const r of runs[k]!) {
        expect(relErr(r.losses, ref.losses), `${k} loss`).toBeLessThan(1e-5);
        expect(relErr(r.norms, ref.norms), `${k} grad norm`).toBeLessThan(1e-5);
        expect(close(r.checksum, ref.checksum), `${k} state dict`).toBeLessThan(1e-5);
      }
    }
  });

  it('bf16 parameters with float32 reduction stay within 2e-2', () => {
    const ref = runs.ref![0];
    for (const r of runs.bf16!) {
      expect(relErr(r.losses, ref.losses)).toBeLessThan(2e-2);
      expect(relErr(r.norms, ref.norms)).toBeLessThan(2e-2);
      expect(r.losses).not.toEqual(ref.losses); // it really computed in bf16
    }
  });
});

describe('fsdp memory, overlap and errors', () => {
  it('parameters + gradients + optimizer state per rank scale as 1/N', () => {
    const total = runs.w1![0].state.total;
    expect(total).toBe(runs.ref![0].state.total);
    // Padding of uneven dim 0 (ceil) adds a little: within 5% of total / N.
    for (const r of runs.w2!) expect(close(r.state.total, total / 2)).toBeLessThan(0.05);
    for (const r of runs.w4meta!) expect(close(r.state.total, total / 4)).toBeLessThan(0.05);
    expect(runs.w4meta![0].state.optimizerState).toBeLessThan(runs.w2![0].state.optimizerState);
  });

  it('live memory does not grow from step to step (no leaked gathers, gradients or buffers)', () => {
    for (const k of ['w1', 'w2', 'hsdp', 'bf16', 'moe2']) {
      for (const r of runs[k]!) {
        const live: number[] = r.live;
        expect(live.length).toBe(20);
        // Step 1 creates the optimizer state; from step 2 on the live bytes stay put.
        for (let i = 2; i < live.length; i++) {
          expect(live[i], `${k} rank ${r.rank} step ${i + 1}: ${live.join(', ')}`).toBe(live[1]);
        }
      }
    }
  });

  it("reshardAfterForward frees the block units' unsharded parameters after forward: lower peak at world 2", () => {
    for (let rank = 0; rank < 2; rank++) {
      const on = runs.memOn![rank];
      const off = runs.memOff![rank];
      // Same numbers either way.
      expect(relErr(on.losses, off.losses)).toBeLessThan(1e-6);
      // Expectation from the layout: every block unit's full parameters (root excluded: it keeps them).
      const blocks = (on.unitBytes as { root: boolean; bytes: number }[]).filter((u) => !u.root);
      expect(blocks.length).toBe(8);
      const unit = blocks[0]!.bytes;
      expect(unit).toBe(246784); // q, k, v (with bias), o, gate, up, down, 2 norms: 61696 float32
      const freed = blocks.reduce((a, u) => a + u.bytes, 0);
      // Right after forward exactly those bytes are gone (both steps).
      for (let s = 0; s < 2; s++) expect(off.afterForward[s] - on.afterForward[s]).toBe(freed);
      // The peak (early in backward) drops by less: in both modes the unit in backward is full and, with
      // reshard on, the previous unit's prefetched all-gather (output + input buffers) is in flight.
      // Measured ≈ 5.8 of the 8 units; require at least (units − 3) and at most all of them.
      const saved = off.peak - on.peak;
      expect(saved, `peak on ${on.peak}, off ${off.peak}, unit ${unit}`).toBeGreaterThanOrEqual(
        (blocks.length - 3) * unit,
      );
      expect(saved).toBeLessThanOrEqual(freed);
      // The run with reshard on stays leak-free too.
      expect(on.live[1]).toBe(on.live[0]);
    }
  });

  it("the next unit's all-gather is issued before the current unit's compute ends (forward and backward)", () => {
    const ev: { t: number; unit: string; kind: string; prefetch?: boolean }[] = runs.w2![0].events;
    const idx = (unit: string, kind: string, from = 0) =>
      ev.findIndex((e, i) => i >= from && e.unit === unit && e.kind === kind);
    // Second step (forward order recorded in the first).
    const s2 = ev.findIndex((e, i) => i > 0 && e.unit === '' && e.kind === 'forward-start');
    expect(s2).toBeGreaterThan(0);
    const f0e = idx('model.layers.0', 'forward-end', s2);
    const ag1 = idx('model.layers.1', 'allgather-issue', s2);
    expect(ev[ag1]!.prefetch).toBe(true);
    expect(ag1).toBeGreaterThan(idx('model.layers.0', 'forward-start', s2));
    expect(ag1).toBeLessThan(f0e);
    expect(ev[ag1]!.t).toBeLessThan(ev[f0e]!.t);
    expect(idx('model.layers.1', 'allgather-wait', s2)).toBeGreaterThan(f0e);
    // Backward: layer 0's all-gather is issued when layer 1's backward starts, before layer 1's reduce-scatter.
    const b1 = idx('model.layers.1', 'backward-start', s2);
    const bag0 = idx('model.layers.0', 'allgather-issue', b1);
    expect(bag0).toBeGreaterThan(b1);
    expect(bag0).toBeLessThan(idx('model.layers.1', 'reduce-scatter-issue', b1));
    expect(ev[bag0]!.prefetch).toBe(true);
    // Without prefetch, every all-gather is issued by the unit's own hook.
    const off: { prefetch?: boolean; kind: string }[] = runs.hsdp![0].events;
    expect(off.filter((e) => e.kind === 'allgather-issue').length).toBeGreaterThan(0);
    expect(off.filter((e) => e.prefetch).length).toBe(0);
  });

  it('bad input gives clear errors', () => {
    const m = runs.errors![0].msgs;
    expect(m.mesh).toMatch(/mesh spans 4 ranks .* the world has 2/);
    expect(m.twice).toMatch(/already sharded/);
    expect(m.optimizer).toMatch(
      /optimizer state 'expAvg' of 'model.embed_tokens.weight' has shape \[128,32\] but the parameter is sharded to \[64,32\]/,
    );
    expect(m.foreign).toMatch(/not sharded by fullyShard/);
    expect(m.skipped).toMatch(
      /storage released: .* \(FSDP reshards after forward: unit 'model\.layers\.0', parameter 'mlp\.\w+_proj\.weight'; was the unit's pre-backward all-gather skipped\?\)/,
    );
  });
});
