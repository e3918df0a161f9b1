import { describe, expect, it } from 'vitest';
import {
  add,
  Generator,
  keep,
  matmul,
  memoryStats,
  mul,
  nn,
  noGrad,
  randn,
  runBackward,
  sum,
  type Tensor,
  tidy,
} from '../src/index.js';
import { expectClose } from './helpers/compare.js';

class Two extends nn.Module {
  l1 = new nn.Linear(3, 4, { generator: new Generator(1) });
  l2 = new nn.Linear(4, 2, { generator: new Generator(2) });
  override forward(x: Tensor): Tensor {
    return this.l2.call(this.l1.call(x));
  }
}

describe('forward hooks', () => {
  it('pre-hooks can replace the arguments and hooks the output; handles remove them', () => {
    const lin = new nn.Linear(2, 2, { bias: false });
    tidy(() => {
      const x = randn([1, 2]);
      const plain = lin.call(x).toArray();
      const seen: unknown[] = [];
      const h1 = lin.registerForwardPreHook((m, args) => {
        seen.push(['pre', m, args[0]]);
        return [mul(args[0] as Tensor, 2)];
      });
      const h2 = lin.registerForwardHook((_m, args, out) => {
        seen.push(['post', (args[0] as Tensor).toArray(), out.toArray()]);
        return add(out, 1);
      });
      const y = lin.call(x).toArray();
      expect(seen[0]).toEqual(['pre', lin, x]);
      expect(seen[1]).toEqual(['post', x.toArray().map((v) => 2 * v), plain.map((v) => 2 * v)]);
      y.forEach((v, i) => {
        expect(v).toBeCloseTo(2 * plain[i]! + 1, 5);
      });
      h1.remove();
      h2.remove();
      expect(lin.call(x).toArray()).toEqual(plain);
      expect(seen.length).toBe(2);
    });
    lin.dispose();
  });
});

describe('backward hooks', () => {
  it('fire in PyTorch order with the output and input gradients', () => {
    const m = new Two();
    const before = memoryStats();
    tidy(() => {
      const order: string[] = [];
      const got: Record<string, (Tensor | null)[]> = {};
      // Hook arguments live until backward ends: keep views of them for the checks below.
      const keepCopy = (gs: (Tensor | null)[]) => gs.map((g) => (g ? keep(g.detach()) : null));
      for (const [name, mod] of [
        ['outer', m],
        ['l1', m.l1],
        ['l2', m.l2],
      ] as const) {
        mod.registerForwardPreHook(() => void order.push(`fpre:${name}`));
        mod.registerForwardHook(() => void order.push(`f:${name}`));
        mod.registerFullBackwardPreHook((_mod, gout) => {
          order.push(`bpre:${name}`);
          got[`${name}.gout.pre`] = keepCopy(gout);
        });
        mod.registerFullBackwardHook((mm, gin, gout) => {
          expect(mm).toBe(mod);
          order.push(`b:${name}`);
          got[`${name}.gin`] = keepCopy(gin);
          got[`${name}.gout`] = keepCopy(gout);
        });
      }
      const x = randn([5, 3], { generator: new Generator(3) }).requiresGrad_(true);
      const w = randn([5, 2], { generator: new Generator(4) });
      const out = m.call(x);
      expect(order).toEqual(['fpre:outer', 'fpre:l1', 'f:l1', 'fpre:l2', 'f:l2', 'f:outer']);
      order.length = 0;
      runBackward([out], [w]);
      expect(order).toEqual(['bpre:outer', 'bpre:l2', 'b:l2', 'bpre:l1', 'b:l1', 'b:outer']);

      // d out = w; d h = w W2; d x = d h W1.
      const gh = noGrad(() => matmul(w, m.l2.weight));
      const gx = noGrad(() => matmul(gh, m.l1.weight));
      expectClose(got['outer.gout.pre']![0]!, w, 1e-6, 'outer grad output');
      expectClose(got['l2.gout']![0]!, w, 1e-6, 'l2 grad output');
      expectClose(got['l2.gin']![0]!, gh, 1e-5, 'l2 grad input');
      expectClose(got['l1.gout.pre']![0]!, gh, 1e-5, 'l1 grad output');
      expectClose(got['l1.gin']![0]!, gx, 1e-5, 'l1 grad input');
      expectClose(got['outer.gin']![0]!, gx, 1e-5, 'outer grad input');
      expectClose(x.grad!, gx, 1e-5, 'x.grad');
      // Parameter gradients are unaffected by the hooks.
      expect(m.l1.weight.grad).not.toBeNull();
      x.grad!.dispose();
      m.zeroGrad();
      for (const gs of Object.values(got)) for (const g of gs) g?.dispose();
    });
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
    m.dispose();
  });

  it('hooks can replace gradients: pre-hooks the output gradients, full hooks the input gradients', () => {
    const m = new Two();
    tidy(() => {
      const x = randn([4, 3]).requiresGrad_(true);
      sum(m.call(x)).backward();
      const plainX = x.grad!.toArray();
      const plainW = m.l1.weight.grad!.toArray();
      x.grad = null;
      m.zeroGrad();

      const pre = m.l2.registerFullBackwardPreHook((_mod, gout) => [mul(gout[0]!, 3)]);
      const full = m.l1.registerFullBackwardHook((_mod, gin) => [mul(gin[0]!, -1)]);
      sum(m.call(x)).backward();
      // l2's output gradient x3 scales everything below it; l1's input gradient is then negated.
      x.grad!.toArray().forEach((v, i) => {
        expect(v).toBeCloseTo(-3 * plainX[i]!, 4);
      });
      m.l1.weight.grad!.toArray().forEach((v, i) => {
        expect(v).toBeCloseTo(3 * plainW[i]!, 4);
      });
      pre.remove();
      full.remove();
      m.zeroGrad();
      x.grad = null;
      sum(m.call(x)).backward();
      expect(x.grad!.toArray()).toEqual(plainX);
      m.zeroGrad();
    });
    m.dispose();
  });

  it('with no input requiring grad, full hooks get null input gradients', () => {
    const lin = new nn.Linear(3, 2);
    tidy(() => {
      const calls: [(Tensor | null)[], number[]][] = [];
      lin.registerFullBackwardHook((_m, gin, gout) => void calls.push([gin, gout[0]!.shape.slice()]));
      const x = randn([4, 3]);
      sum(lin.call(x)).backward();
      expect(calls).toEqual([[[null], [4, 2]]]);
      // Without grad recording no hook is set up at all.
      noGrad(() => lin.call(x));
      expect(calls.length).toBe(1);
      lin.zeroGrad();
    });
    lin.dispose();
  });
});
