import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  adamwStep,
  keep,
  manualSeed,
  memoryStats,
  mul,
  nn,
  optim,
  randn,
  sum,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from '../src/index.js';
import { relativeError } from './helpers/compare.js';
import { readSafetensors, tensorFromBytes } from './helpers/safetensors.js';

const file = readSafetensors(join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'optim.safetensors'));
const cases = JSON.parse(file.metadata.cases!) as Record<string, any>[];
const byName = (n: string) => cases.find((c) => c.name === n)!;

/** A fresh CPU tensor of a stored fixture entry (caller disposes; use inside tidy). */
function get(key: string): Tensor {
  const e = file.tensors.get(key);
  if (!e) throw new Error(`fixture has no ${key}`);
  return tensorFromBytes(e);
}

function camel(opts: Record<string, any>): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [k, v] of Object.entries(opts ?? {})) out[k.replace(/_([a-z])/g, (_, c) => c.toUpperCase())] = v;
  return out;
}

function expectNear(actual: Tensor, expected: Tensor, rtol: number, what: string): void {
  const err = relativeError(actual.toTypedArray(), expected.toTypedArray());
  expect(err, `${what}: relative error ${err}`).toBeLessThanOrEqual(rtol);
}

function makeOptimizer(c: Record<string, any>, params: Record<string, nn.Parameter>): optim.Optimizer<any> {
  const opts = camel(c.opts);
  const groups = c.groups
    ? (c.groups as [string[], Record<string, any>][]).map(([names, g]) => ({
        params: names.map((n) => params[n]!),
        ...camel(g),
      }))
    : Object.values(params);
  return c.kind === 'adamw' ? new optim.AdamW(groups as any, opts) : new optim.SGD(groups as any, opts as any);
}

function runOptimizerCase(name: string): void {
  const c = byName(name);
  const rtol = c.dtype === 'bfloat16' ? 1e-2 : 1e-5;
  tidy(() => {
    const params: Record<string, nn.Parameter> = {};
    for (const k of c.params as string[]) params[k] = nn.parameter(get(`${name}.${k}.init`));
    const opt = makeOptimizer(c, params);
    for (let t = 0; t < c.steps; t++) {
      for (const k of c.params as string[]) params[k]!.grad = keep(get(`${name}.${k}.grad.${t}`));
      opt.step();
      opt.zeroGrad();
      for (const k of c.params as string[]) {
        expect(params[k]!.dtype).toBe(c.dtype);
        expectNear(params[k]!, get(`${name}.${k}.after.${t}`), rtol, `${name} ${k} after step ${t + 1}`);
      }
    }
    for (const s of opt.state.values()) {
      for (const v of Object.values(s)) if (typeof v !== 'number') expect(v.dtype).toBe('float32');
    }
    opt.dispose();
    for (const p of Object.values(params)) p.dispose();
  });
}

describe('AdamW matches torch.optim.AdamW step after step', () => {
  for (const name of ['adamw_f32', 'adamw_defaults', 'adamw_amsgrad', 'adamw_groups', 'adamw_bf16']) {
    it(name, () => runOptimizerCase(name));
  }

  it('bf16 parameters keep float32 state and are not just rounded per op', () => {
    // Stored bf16 params after each step must be the fp32 update rounded once: compare bit-exactly
    // on the first step, where no state has been rounded yet.
    tidy(() => {
      const c = byName('adamw_bf16');
      const p = nn.parameter(get('adamw_bf16.w.init'));
      p.grad = keep(get('adamw_bf16.w.grad.0'));
      const opt = new optim.AdamW([p], camel(c.opts));
      opt.step();
      const want = get('adamw_bf16.w.after.0').toArray();
      const got = p.toArray();
      let same = 0;
      for (let i = 0; i < got.length; i++) if (got[i] === want[i]) same++;
      expect(same).toBeGreaterThanOrEqual(got.length - 1);
      opt.dispose();
      p.grad?.dispose();
      p.dispose();
    });
  });

  it('adamwStep validates its arguments', () => {
    tidy(() => {
      const p = zeros([3]);
      const o = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, step: 1 };
      expect(() => adamwStep(p, zeros([4]), zeros([3]), zeros([3]), o)).toThrow(
        /grad has shape \[4\], param has \[3\]/,
      );
      expect(() => adamwStep(p, zeros([3]), zeros([3]), zeros([3]), { ...o, step: 0 })).toThrow(/step must be/);
      expect(() => new optim.AdamW([nn.parameter(zeros([2]))], { betas: [1.2, 0.9] })).toThrow(
        /beta parameter at index 0/,
      );
    });
  });
});

describe('SGD matches torch.optim.SGD', () => {
  for (const name of ['sgd_plain', 'sgd_momentum', 'sgd_nesterov']) {
    it(name, () => runOptimizerCase(name));
  }
  it('rejects Nesterov without momentum', () => {
    tidy(() => {
      expect(() => new optim.SGD([nn.parameter(zeros([2]))], { lr: 0.1, nesterov: true })).toThrow(/Nesterov/);
    });
  });
});

describe('clipGradNorm matches torch.nn.utils.clip_grad_norm_', () => {
  for (const name of ['clip_l2', 'clip_noop', 'clip_inf', 'clip_l1', 'clip_p3']) {
    it(name, () => {
      const c = byName(name);
      tidy(() => {
        const ps = (c.params as string[]).map((k) => {
          const p = nn.parameter(zeros(get(`${name}.${k}.grad`).shape));
          p.grad = keep(get(`${name}.${k}.grad`));
          return p;
        });
        const normType = c.norm_type === 'inf' ? Number.POSITIVE_INFINITY : c.norm_type;
        const total = optim.clipGradNorm([...ps, nn.parameter(zeros([2]))], c.max_norm, { normType });
        const want = get(`${name}.total`).item();
        expect(Math.abs(total - want) / want).toBeLessThan(1e-6);
        (c.params as string[]).forEach((k, i) => {
          expectNear(ps[i]!.grad!, get(`${name}.${k}.clipped`), 1e-5, `${name} ${k}`);
        });
        for (const p of ps) {
          p.grad!.dispose();
          p.dispose();
        }
      });
    });
  }

  it('combines shards through allReduce and reports non-finite norms when asked', () => {
    tidy(() => {
      const a = nn.parameter(zeros([2]));
      a.grad = keep(tensor([3, 0]));
      // Another "rank" holds a gradient [0, 4]: its sum of squares is 16.
      const total = optim.clipGradNorm([a], 1, { allReduce: (v, op) => (op === 'sum' ? v + 16 : v) });
      expect(total).toBeCloseTo(5, 6);
      expect(a.grad.toArray()[0]).toBeCloseTo(3 / 5, 5);
      a.grad.dispose();
      a.grad = keep(tensor([Number.NaN, 1]));
      expect(() => optim.clipGradNorm([a], 1, { errorIfNonfinite: true })).toThrow(/total norm/);
      a.grad.dispose();
      a.dispose();
    });
  });
});

describe('learning-rate schedules match LambdaLR with the Hugging Face factors', () => {
  for (const name of ['sched_constant', 'sched_linear', 'sched_linear_min', 'sched_cosine', 'sched_cosine_min']) {
    it(name, () => {
      const c = byName(name);
      tidy(() => {
        const ps = (c.base_lrs as number[]).map(() => nn.parameter(zeros([1])));
        const opt = new optim.SGD(
          ps.map((p, i) => ({ params: [p], lr: c.base_lrs[i] })),
          { lr: 1 },
        );
        const make = { constant: optim.constantSchedule, linear: optim.linearSchedule, cosine: optim.cosineSchedule }[
          c.schedule as 'constant'
        ];
        const sched = make(opt, c.opts);
        const want = get(`${name}.lrs`).toArray();
        const got: number[] = [];
        for (let t = 0; t < c.steps; t++) {
          got.push(...sched.getLastLr());
          expect(opt.paramGroups.map((g) => g.lr)).toEqual(sched.getLastLr());
          opt.step();
          sched.step();
        }
        expect(got.length).toBe(want.length);
        got.forEach((v, i) => {
          expect(v).toBeCloseTo(want[i]!, 12);
        });
        for (const p of ps) p.dispose();
      });
    });
  }

  it('scheduler state round-trips', () => {
    tidy(() => {
      const p = nn.parameter(zeros([1]));
      const opt = new optim.SGD([p], { lr: 0.5 });
      const s = optim.cosineSchedule(opt, { warmupSteps: 2, totalSteps: 10, minLrRatio: 0.1 });
      for (let i = 0; i < 5; i++) s.step();
      const saved = JSON.parse(JSON.stringify(s.stateDict()));
      const lr = opt.paramGroups[0]!.lr;
      const opt2 = new optim.SGD([p], { lr: 0.5 });
      const s2 = optim.cosineSchedule(opt2, { warmupSteps: 2, totalSteps: 10, minLrRatio: 0.1 });
      s2.loadStateDict(saved);
      expect(opt2.paramGroups[0]!.lr).toBe(lr);
      s.step();
      s2.step();
      expect(s2.getLastLr()).toEqual(s.getLastLr());
      p.dispose();
    });
  });
});

describe('a training loop: clip + AdamW + cosine schedule', () => {
  it('matches PyTorch, and resuming from state dicts continues the same run', () => {
    const c = byName('train');
    tidy(() => {
      const names = c.params as string[];
      const run = (resumeAt: number | null) => {
        const params: Record<string, nn.Parameter> = {};
        for (const k of names) params[k] = nn.parameter(get(`train.${k}.init`));
        const make = () => {
          const o = new optim.AdamW(Object.values(params), {
            lr: 0.05,
            betas: [0.9, 0.99],
            eps: 1e-6,
            weightDecay: 0.05,
          });
          return { o, s: optim.cosineSchedule(o, { warmupSteps: 2, totalSteps: c.steps, minLrRatio: 0.1 }) };
        };
        let { o, s } = make();
        const norms: number[] = [];
        for (let t = 0; t < c.steps; t++) {
          if (t === resumeAt) {
            // Save, throw the optimizer away, build a new one and load.
            const osd = o.stateDict();
            const ssd = JSON.parse(JSON.stringify(s.stateDict()));
            const fresh = make();
            fresh.o.loadStateDict(osd);
            fresh.s.loadStateDict(ssd);
            o.dispose();
            ({ o, s } = fresh);
          }
          for (const k of names) params[k]!.grad = keep(get(`train.${k}.grad.${t}`));
          norms.push(optim.clipGradNorm(Object.values(params), 1.0));
          o.step();
          s.step();
          o.zeroGrad();
          for (const k of names) expectNear(params[k]!, get(`train.${k}.after.${t}`), 1e-5, `train ${k} step ${t + 1}`);
        }
        const want = get('train.norms').toArray();
        norms.forEach((n, i) => {
          expect(Math.abs(n - want[i]!) / want[i]!).toBeLessThan(1e-5);
        });
        const last = Object.values(params).map((p) => p.toArray());
        o.dispose();
        for (const p of Object.values(params)) p.dispose();
        return last;
      };
      const straight = run(null);
      const resumed = run(3);
      expect(resumed).toEqual(straight);
    });
  });

  it('optimizer stateDict uses PyTorch layout and checks the groups on load', () => {
    tidy(() => {
      const a = nn.parameter(zeros([2]));
      const b = nn.parameter(zeros([3]));
      const o = new optim.AdamW([{ params: [a] }, { params: [b], lr: 0.1 }]);
      b.grad = keep(tensor([1, 2, 3]));
      o.step();
      const sd = o.stateDict();
      expect(sd.paramGroups.map((g) => g.params)).toEqual([[0], [1]]);
      expect(Object.keys(sd.state)).toEqual(['1']);
      expect(sd.state[1]!.step).toBe(1);
      expect(sd.paramGroups[1]!.lr).toBe(0.1);
      const wrong = new optim.AdamW([a, b]);
      expect(() => wrong.loadStateDict(sd)).toThrow(/2 parameter groups, the optimizer 1/);
      o.dispose();
      b.grad.dispose();
      a.dispose();
      b.dispose();
    });
  });
});

describe('memory', () => {
  it('a training step leaves live tensors and bytes unchanged from step 2 on', () => {
    manualSeed(0);
    const model = new nn.Linear(6, 4);
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2 });
    const sched = optim.linearSchedule(opt, { warmupSteps: 1, totalSteps: 10 });
    const x = keep(randn([5, 6]));
    const w = keep(randn([5, 4]));
    const snapshots: { liveTensors: number; liveBytes: number }[] = [];
    for (let step = 0; step < 5; step++) {
      tidy(() => {
        const loss = sum(mul(model.call(x), w));
        loss.backward();
      });
      optim.clipGradNorm(model.parameters(), 0.5);
      opt.step();
      sched.step();
      opt.zeroGrad();
      const { liveTensors, liveBytes } = memoryStats('cpu');
      snapshots.push({ liveTensors, liveBytes });
    }
    for (let i = 2; i < snapshots.length; i++) expect(snapshots[i]).toEqual(snapshots[1]);
    const before = memoryStats('cpu');
    opt.dispose();
    model.dispose();
    x.dispose();
    w.dispose();
    const after = memoryStats('cpu');
    // Weight [4,6] + bias [4] + two fp32 moments each, + x + w.
    expect(before.liveBytes - after.liveBytes).toBe(4 * (3 * (24 + 4) + 30 + 20));
  });
});
