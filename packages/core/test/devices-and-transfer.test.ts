import { describe, expect, it } from 'vitest';
import {
  empty,
  manualSeed,
  matmul,
  memoryStats,
  nn,
  normalizeDevice,
  parseDevice,
  Tensor,
  tensor,
  tidy,
  toDevice,
  zeros,
} from '../src/index.js';

describe('devices', () => {
  it('parses cpu, meta and cuda:N, and rejects nonsense', () => {
    expect(parseDevice('cuda:3')).toEqual({ backend: 'cuda', index: 3 });
    expect(normalizeDevice('cuda')).toBe('cuda:0');
    expect(() => parseDevice('gpu 1')).toThrow(/invalid device 'gpu 1'/);
  });

  it('cuda is reserved for its plugin: a clear error without it', () => {
    expect(() => zeros([2], { device: 'cuda:0' })).toThrow(/no backend for device 'cuda:0'.*kernels-cuda/);
  });

  it('meta tensors have a shape and no data, and use no bytes', () => {
    const before = memoryStats('meta');
    tidy(() => {
      const m = empty([1024, 1024], { device: 'meta' });
      expect(m.shape).toEqual([1024, 1024]);
      expect(memoryStats('meta').liveTensors).toBe(before.liveTensors + 1);
      expect(memoryStats('meta').liveBytes).toBe(0);
      expect(() => m.toArray()).toThrow(/meta tensors have no data/);
      expect(() => toDevice(m, 'cpu')).toThrow(/cannot copy a meta tensor \[1024,1024\] to 'cpu'/);
      expect(m.reshape(-1).shape).toEqual([1 << 20]);
      expect(() => matmul(m, m)).toThrow(/no kernel 'matmul' for device 'meta'/);
    });
    expect(memoryStats('meta').liveTensors).toBe(before.liveTensors);
  });

  it('a module built on meta materialises identically to one built on cpu', () => {
    manualSeed(11);
    const onCpu = new nn.Linear(5, 3);
    manualSeed(11);
    const onMeta = new nn.Linear(5, 3, { device: 'meta' });
    expect(onMeta.weight.device).toBe('meta');
    onMeta.materialize('cpu');
    expect(onMeta.weight.toArray()).toEqual(onCpu.weight.toArray());
    expect(onMeta.bias!.toArray()).toEqual(onCpu.bias!.toArray());
    onCpu.dispose();
    onMeta.dispose();
  });

  it('to(dtype) casts with gradients, to(device) copies and moves the gradient back', () =>
    tidy(() => {
      const x = tensor([1.5, -2.25, 3], { requiresGrad: true });
      const h = x.to('bfloat16');
      expect(h.dtype).toBe('bfloat16');
      expect(h.toArray()).toEqual([1.5, -2.25, 3]);
      const back = h.to('float32').to('meta');
      expect(back.device).toBe('meta');
      const y = x.to('cpu');
      expect(y).toBe(x); // nothing to do
      h.to('float32').backward(tensor([1, 2, 3]));
      expect(x.grad!.toArray()).toEqual([1, 2, 3]);
      x.grad!.dispose();
    }));

  it('`using` disposes at the end of the block', () => {
    const before = memoryStats().liveTensors;
    {
      using t = zeros([8]);
      expect(memoryStats().liveTensors).toBe(before + 1);
      expect(t).toBeInstanceOf(Tensor);
    }
    expect(memoryStats().liveTensors).toBe(before);
  });

  it('nn.Module.to moves parameters between devices keeping their identity', () =>
    tidy(() => {
      const lin = new nn.Linear(3, 2);
      const w = lin.weight;
      lin.to('meta');
      expect(lin.weight).toBe(w);
      expect(w.device).toBe('meta');
      lin.dispose();
    }));
});
