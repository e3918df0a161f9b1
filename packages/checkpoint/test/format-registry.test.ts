import { join } from 'node:path';
import { createRegistry, defaultRegistry, memoryStats, type Tensor, tensor } from '@omnitrain/core';
import { describe, expect, it } from 'vitest';
import { type CheckpointFormat, hfSafetensorsFormat, plugin } from '../src/index.js';
import { tempDir } from './helpers.js';

describe('hf-safetensors format in the registry', () => {
  const dir = tempDir('fmt');

  it('the plugin registers hf-safetensors; save then load through it round-trips', () => {
    const r = createRegistry().use(plugin);
    expect(r.checkpointFormats.names()).toContain('hf-safetensors');
    const fmt = r.checkpointFormats.get('hf-safetensors') as CheckpointFormat;
    expect(fmt).toBe(hfSafetensorsFormat);
    expect(fmt.name).toBe('hf-safetensors');

    const before = memoryStats('cpu').liveTensors;
    const sd: Record<string, Tensor> = {
      'model.embed_tokens.weight': tensor([1, 2, 3, 4, 5, 6], { shape: [3, 2] }),
      'model.norm.weight': tensor([0.5, 0.25], { dtype: 'bfloat16' }),
      'lm_head.weight': tensor([7, 8, 9, 10, 11, 12], { shape: [3, 2] }),
    };
    const out = join(dir, 'ckpt');
    const res = fmt.save(sd, out, { maxShardBytes: 30 });
    expect(res.files.map((f) => f.slice(out.length + 1))).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    const loaded = fmt.load(out, { dtype: 'float32' });
    expect(Object.keys(loaded).sort()).toEqual(Object.keys(sd).sort());
    expect(loaded['model.norm.weight']!.dtype).toBe('float32');
    expect(loaded['model.norm.weight']!.toArray()).toEqual([0.5, 0.25]);
    expect(loaded['lm_head.weight']!.toArray()).toEqual([7, 8, 9, 10, 11, 12]);
    const some = fmt.load(out, { names: ['lm_head.weight'] });
    expect(Object.keys(some)).toEqual(['lm_head.weight']);
    const src = fmt.open(out);
    expect(src.info('lm_head.weight').shape).toEqual([3, 2]);
    src.close();
    for (const t of [...Object.values(sd), ...Object.values(loaded), ...Object.values(some)]) t.dispose();
    expect(memoryStats('cpu').liveTensors).toBe(before);
  });

  it("importing '@omnitrain/checkpoint/register' installs it in the default registry", async () => {
    await import('@omnitrain/checkpoint/register');
    expect(defaultRegistry().checkpointFormats.get('hf-safetensors')).toBe(hfSafetensorsFormat);
  });

  it('a failed load disposes what it had read', () => {
    const before = memoryStats('cpu').liveTensors;
    const out = join(dir, 'ckpt2');
    const a = tensor([1, 2]);
    hfSafetensorsFormat.save({ a }, out);
    expect(() => hfSafetensorsFormat.load(out, { names: ['a', 'missing'] })).toThrow(/no tensor 'missing'/);
    a.dispose();
    expect(memoryStats('cpu').liveTensors).toBe(before);
  });
});
