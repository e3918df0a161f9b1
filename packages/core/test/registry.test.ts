import { describe, expect, it } from 'vitest';
import {
  createRegistry,
  defaultRegistry,
  dispatch1,
  getRegistry,
  Registry,
  type Tensor,
  tensor,
  tidy,
  withRegistry,
} from '../src/index.js';

describe('registry', () => {
  it('the default registry lives on globalThis under Symbol.for("omnitrain.registry")', () => {
    const r = defaultRegistry();
    const g = globalThis as unknown as Record<symbol, unknown>;
    expect(g[Symbol.for('omnitrain.registry')]).toBe(r);
    expect(getRegistry()).toBe(defaultRegistry());
    expect(defaultRegistry().backendNames()).toEqual(expect.arrayContaining(['cpu', 'meta']));
  });

  it('a higher-priority kernel overrides the reference one for the same device', () => {
    const r = createRegistry();
    const calls: string[] = [];
    r.registerKernel('cpu', 'double', ([x]) => {
      calls.push('reference');
      return tensor((x as Tensor).toArray().map((v) => 2 * v));
    });
    r.registerKernel(
      'cpu',
      'double',
      ([x]) => {
        calls.push('native');
        return tensor((x as Tensor).toArray().map((v) => v + v));
      },
      { priority: 10, source: 'test-native' },
    );
    withRegistry(r, () =>
      tidy(() => {
        expect(dispatch1('double', [tensor([1, 2])]).toArray()).toEqual([2, 4]);
      }),
    );
    expect(calls).toEqual(['native']);
    expect(r.kernels('cpu', 'double').map((k) => k.source)).toEqual(['test-native', 'unknown']);
  });

  it('names the op, the device and where it is registered when no kernel exists', () => {
    const r = createRegistry();
    r.registerKernel('cpu', 'onlyCpu', ([x]) => x!);
    expect(() => r.kernel('onlyCpu', 'cuda:0')).toThrow("no kernel 'onlyCpu' for device 'cuda:0'; registered: cpu");
    expect(() => r.kernel('nothing', 'cpu')).toThrow("no kernel 'nothing' for device 'cpu'; registered: (none)");
    expect(() => r.backend('cuda:1')).toThrow(/no backend for device 'cuda:1'.*kernels-cuda/);
  });

  it('use() installs a plugin once and fresh registries are isolated', () => {
    const r = new Registry();
    let setups = 0;
    const plugin = {
      name: 'parallel-test',
      setup(reg: Registry) {
        setups++;
        reg.parallel.register('test', { apply: () => {} });
      },
    };
    r.use(plugin).use(plugin);
    expect(setups).toBe(1);
    expect(r.plugins().map((p) => p.name)).toEqual(['parallel-test']);
    expect(r.parallel.names()).toEqual(['test']);
    expect(() => r.parallel.get('fsdp')).toThrow("unknown parallel strategy 'fsdp'; installed: test");
    expect(createRegistry().parallel.names()).toEqual([]);
    expect(
      defaultRegistry()
        .plugins()
        .some((p) => p.name === 'parallel-test'),
    ).toBe(false);
  });
});
