// Storage.releaseBytes / ensureAllocated (PyTorch's untyped_storage().resize_(0) and back):
// the bytes go and come back while the Storage, its tensors, views and autograd links stay.
import { describe, expect, it } from 'vitest';
import { add, getRegistry, memoryStats, mul, noGrad, sum, tensor, tidy } from '../src/index.js';

const resetPeak = () => getRegistry().backend('cpu').resetPeak();

describe('storage releaseBytes / ensureAllocated', () => {
  it('live bytes drop on release and rise on re-allocation; the peak follows; dispose does not double-free', () => {
    const base = memoryStats('cpu');
    const t = tensor(
      Array.from({ length: 1000 }, (_, i) => i),
      { dtype: 'float32' },
    );
    const view = t.slice0(10, 20);
    expect(memoryStats('cpu').liveBytes - base.liveBytes).toBe(4000);
    resetPeak();
    t.storage.releaseBytes('test release');
    expect(t.storage.isAllocated).toBe(false);
    expect(memoryStats('cpu').liveBytes - base.liveBytes).toBe(0);
    expect(memoryStats('cpu').liveStorages).toBe(base.liveStorages);
    // The objects stay valid: shape, views, not disposed.
    expect(t.isDisposed).toBe(false);
    expect(view.shape).toEqual([10]);
    t.storage.releaseBytes(); // idempotent
    expect(memoryStats('cpu').liveBytes - base.liveBytes).toBe(0);
    resetPeak();
    const before = memoryStats('cpu').peakBytes;
    t.storage.ensureAllocated();
    t.storage.ensureAllocated(); // idempotent
    expect(t.storage.isAllocated).toBe(true);
    expect(memoryStats('cpu').liveBytes - base.liveBytes).toBe(4000);
    expect(memoryStats('cpu').peakBytes - before).toBe(4000);
    expect(memoryStats('cpu').liveStorages).toBe(base.liveStorages + 1);
    // Re-allocated memory is zeroed; the view sees what is written through the base tensor.
    expect(t.toArray().every((v) => v === 0)).toBe(true);
    t.raw().set(Float32Array.from({ length: 1000 }, (_, i) => 2 * i));
    expect(view.toArray()).toEqual([20, 22, 24, 26, 28, 30, 32, 34, 36, 38]);
    // Released again, then disposed: counted once.
    t.storage.releaseBytes();
    view.dispose();
    t.dispose();
    expect(memoryStats('cpu')).toMatchObject({
      liveBytes: base.liveBytes,
      liveStorages: base.liveStorages,
      liveTensors: base.liveTensors,
    });
  });

  it('kernels, raw() and reads of a released storage throw "storage released" with the reason', () => {
    tidy(() => {
      const t = tensor([1, 2, 3], { dtype: 'float32' });
      t.name = 'w';
      t.storage.releaseBytes('FSDP reshards after forward; was the pre-backward all-gather skipped?');
      const reason = /storage released: .*\(FSDP reshards after forward; was the pre-backward all-gather skipped\?\)/;
      expect(() => add(t, 1)).toThrow(reason);
      expect(() => t.raw()).toThrow(/storage released: raw\(\) of tensor #\d+ 'w' \[3\] float32 touched 12 bytes/);
      expect(() => t.toArray()).toThrow(reason);
      expect(() => t.slice0(2).item()).toThrow(reason);
      expect(() => t.storage.handle).toThrow(reason);
      t.storage.ensureAllocated();
      expect(add(t, 1).toArray()).toEqual([1, 1, 1]);
    });
  });

  it('autograd saved tensors see the data written after re-allocation (the FSDP pattern)', () => {
    tidy(() => {
      const x = tensor([1, 2, 3], { dtype: 'float32', requiresGrad: true });
      const full = tensor([4, 5, 6], { dtype: 'float32' });
      const w = noGrad(() => full.detach()).requiresGrad_();
      const loss = sum(mul(x, w)); // saves w (a view of full's storage) for x's gradient
      // After forward: free the bytes; autograd still holds the storage object.
      const live = memoryStats('cpu').liveBytes;
      full.storage.releaseBytes('after forward');
      expect(memoryStats('cpu').liveBytes).toBe(live - 12);
      // Before backward: allocate again and write the values back (an all-gather would).
      full.storage.ensureAllocated();
      full.raw().set([4, 5, 6]);
      loss.backward();
      expect(x.grad!.toArray()).toEqual([4, 5, 6]);
      expect(w.grad!.toArray()).toEqual([1, 2, 3]);
    });
  });

  it('backward over a released saved tensor throws instead of reading garbage', () => {
    tidy(() => {
      const x = tensor([1, 2], { dtype: 'float32', requiresGrad: true });
      const w = tensor([3, 4], { dtype: 'float32' });
      const loss = sum(mul(x, w));
      w.storage.releaseBytes('skipped all-gather');
      expect(() => loss.backward()).toThrow(/storage released: .*\(skipped all-gather\)/);
      w.storage.ensureAllocated();
    });
  });
});
