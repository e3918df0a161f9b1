import { describe, expect, it } from 'vitest';
import {
  add,
  checkpoint,
  defaultGenerator,
  Generator,
  manualSeed,
  memoryStats,
  mul,
  nn,
  randn,
  runBackward,
  silu,
  sum,
  type Tensor,
  tidy,
} from '../src/index.js';

class Block extends nn.Module {
  norm = new nn.RMSNorm(16);
  up = new nn.Linear(16, 48);
  down = new nn.Linear(48, 16);
  constructor(seed: number) {
    super();
    for (const m of [this.up, this.down]) {
      const t = randn(m.weight.shape, { generator: new Generator(seed++) });
      m.weight.setData(t);
      t.dispose();
    }
  }
  override forward(h: Tensor): Tensor {
    return add(h, this.down.call(silu(this.up.call(this.norm.call(h)))));
  }
}

class Net extends nn.Module {
  layers = new nn.ModuleList([new Block(1), new Block(5), new Block(9)]);
  override forward(x: Tensor, useCheckpoint: boolean): Tensor {
    let h = x;
    for (const layer of this.layers) h = useCheckpoint ? checkpoint((t: Tensor) => layer.call(t), h) : layer.call(h);
    return h;
  }
}

function gradsOf(
  net: Net,
  x: Tensor,
  w: Tensor,
  useCheckpoint: boolean,
): { x: number[]; params: number[][]; out: number[] } {
  return tidy(() => {
    const leaf = x.detach().requiresGrad_(true);
    const out = net.call(leaf, useCheckpoint);
    runBackward([out], [w]);
    const r = { x: leaf.grad!.toArray(), params: net.parameters().map((p) => p.grad!.toArray()), out: out.toArray() };
    leaf.grad!.dispose();
    net.zeroGrad();
    return r;
  });
}

describe('checkpoint', () => {
  it('gives exactly the gradients of the plain run (inputs and parameters)', () => {
    const net = new Net();
    tidy(() => {
      const x = randn([2, 7, 16], { generator: new Generator(11) });
      const w = randn([2, 7, 16], { generator: new Generator(12) });
      const plain = gradsOf(net, x, w, false);
      const ckpt = gradsOf(net, x, w, true);
      expect(ckpt.out).toEqual(plain.out);
      expect(ckpt.x).toEqual(plain.x);
      expect(ckpt.params.length).toBe(plain.params.length);
      ckpt.params.forEach((g, i) => {
        expect(g).toEqual(plain.params[i]);
      });
      expect(plain.params.every((g) => g.some((v) => v !== 0))).toBe(true);
    });
    net.dispose();
  });

  it('keeps fewer bytes alive between forward and backward, and leaks nothing', () => {
    const net = new Net();
    const before = memoryStats();
    const held: number[] = [];
    for (const useCheckpoint of [false, true]) {
      tidy(() => {
        const x = randn([4, 64, 16]).requiresGrad_(true);
        const start = memoryStats().liveBytes;
        const out = net.call(x, useCheckpoint);
        held.push(memoryStats().liveBytes - start);
        sum(out).backward();
        x.grad!.dispose();
        net.zeroGrad();
      });
    }
    // Plain: every block saves its activations; checkpointed: each block saves its input only.
    expect(held[1]!).toBeLessThan(held[0]! / 3);
    expect(memoryStats().liveTensors).toBe(before.liveTensors);
    expect(memoryStats().liveBytes).toBe(before.liveBytes);
    net.dispose();
  });

  it('replays the default generator, so random draws inside the block repeat', () => {
    tidy(() => {
      const noisy = (t: Tensor) => mul(t, randn(t.shape)); // draws from the default generator
      manualSeed(5);
      const x = randn([6]).requiresGrad_(true);
      const stateBefore = defaultGenerator().offset;
      const y = checkpoint(noisy, x);
      const afterForward = defaultGenerator().offset;
      expect(afterForward).toBeGreaterThan(stateBefore);
      sum(y).backward();
      expect(defaultGenerator().offset).toBe(afterForward); // backward did not shift the stream
      const noise = y.toArray().map((v, i) => v / x.toArray()[i]!);
      x.grad!.toArray().forEach((g, i) => {
        expect(g).toBeCloseTo(noise[i]!, 5);
      });
    });
  });

  it('runs normally when no input requires grad (parameters still get gradients), and accepts non-tensor args', () => {
    const lin = new nn.Linear(3, 3);
    tidy(() => {
      const x = randn([2, 3]);
      const y = checkpoint((t: Tensor, k: number) => mul(lin.call(t), k), x, 2);
      sum(y).backward();
      expect(lin.weight.grad).not.toBeNull();
      lin.zeroGrad();
      const z = randn([2, 3]).requiresGrad_(true);
      // An output that is the input itself, plus a computed one.
      const [same, doubled] = checkpoint((t: Tensor) => [t, mul(lin.call(t), 2)], z);
      expect(same).not.toBe(z);
      sum(add(same!, doubled!)).backward();
      expect(z.grad).not.toBeNull();
      expect(lin.weight.grad).not.toBeNull();
      lin.zeroGrad();
      z.grad!.dispose();
    });
    lin.dispose();
  });
});
