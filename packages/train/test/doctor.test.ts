import { doctor } from '@omnitrain/train';
import { describe, expect, it } from 'vitest';

describe('omnitrain doctor', () => {
  it('lists the installed plugins with versions and every backend with its availability', async () => {
    const out = await doctor();
    const text = out.join('\n');
    expect(out[0]).toMatch(/^node: v\d+/);
    for (const p of ['core', 'models', 'data', 'checkpoint', 'parallel-fsdp', 'comm-gloo', 'kernels-cpu', 'train'])
      expect(text).toMatch(new RegExp(`^  @omnitrain/${p} +\\d+\\.\\d+\\.\\d+`, 'm'));
    expect(text).toMatch(/^ {2}@omnitrain\/models +[\d.]+ +plugin 'models' [\d.]+, loaded$/m);
    for (const b of ['kernels-cpu native', 'gloo', 'cuda'])
      expect(text).toMatch(new RegExp(`^  ${b} +(available|unavailable): .+`, 'm'));
    expect(text).toMatch(/^ {2}cuda +unavailable: @omnitrain\/kernels-cuda is not installed \(.+\)$/m);
    expect(text).toMatch(/registered checkpoint formats: .*dcp/);
  });

  it('says why a backend is unavailable (a package that fails, a status that says no)', async () => {
    const real = (n: string) => import(/* @vite-ignore */ n) as Promise<Record<string, unknown>>;
    const out = await doctor({
      importer: async (name) => {
        if (name === '@omnitrain/comm-gloo') {
          const m = await real(name);
          return {
            ...m,
            glooStatus: () => ({ available: false, message: 'libgloo.so.0: cannot open shared object file' }),
          };
        }
        if (name === '@omnitrain/kernels-cpu') throw new Error('the addon was built for another Node ABI');
        if (name === '@omnitrain/kernels-cuda') {
          const e = new Error(`Cannot find package '${name}'`) as Error & { code: string };
          e.code = 'ERR_MODULE_NOT_FOUND';
          throw e;
        }
        return real(name);
      },
    });
    const text = out.join('\n');
    expect(text).toMatch(/^ {2}gloo +unavailable: libgloo\.so\.0: cannot open shared object file$/m);
    expect(text).toMatch(
      /^ {2}kernels-cpu native +unavailable: @omnitrain\/kernels-cpu failed to load: the addon was built for another Node ABI$/m,
    );
    expect(text).toMatch(/^ {2}@omnitrain\/kernels-cpu +[\d.]+ +FAILED to load: the addon was built/m);
    expect(text).toMatch(/^ {2}cuda +unavailable: @omnitrain\/kernels-cuda is not installed/m);
  });
});
