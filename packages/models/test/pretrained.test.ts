// fromPretrained / saveToPretrained: bitwise round trip (single file and sharded), and strict
// loading errors naming the tensor and both shapes.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors, openSafetensorsDir, writeSafetensors } from '@omnitrain/checkpoint';
import { dispose, type Tensor } from '@omnitrain/core';
import { afterAll, describe, expect, it } from 'vitest';
import { fromPretrained, saveToPretrained } from '../src/index.js';
import { FIXTURE_NAMES, FIXTURES } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'omnitrain-models-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function bytesOf(dir: string): Map<string, string> {
  const src = openSafetensorsDir(dir);
  try {
    return new Map(
      src
        .keys()
        .map((k) => [k, `${JSON.stringify(src.info(k).shape)}:${Buffer.from(src.readBytes(k)).toString('base64')}`]),
    );
  } finally {
    src.close();
  }
}

describe('round trip', () => {
  it.each(FIXTURE_NAMES)('%s: load, save, the tensors are bitwise those of the original checkpoint', (name) => {
    const model = fromPretrained(join(FIXTURES, name));
    const out = join(tmp, `rt-${name}`);
    try {
      saveToPretrained(model, out);
    } finally {
      model.dispose();
    }
    expect(bytesOf(out)).toEqual(bytesOf(join(FIXTURES, name)));
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    const orig = JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8'));
    for (const [k, v] of Object.entries(orig)) expect(cfg[k], k).toEqual(v);
    expect(cfg.torch_dtype).toBe('float32');
  });

  it('bf16 and sharded: save, reload, save again gives identical bytes', () => {
    const m1 = fromPretrained(join(FIXTURES, 'qwen3_moe-odd'), { dtype: 'bfloat16' });
    const a = join(tmp, 'bf16-a');
    const b = join(tmp, 'bf16-b');
    try {
      saveToPretrained(m1, a, { maxShardBytes: 40_000 });
    } finally {
      m1.dispose();
    }
    const index = JSON.parse(readFileSync(join(a, 'model.safetensors.index.json'), 'utf8'));
    expect(new Set(Object.values(index.weight_map)).size).toBeGreaterThan(2);
    const m2 = fromPretrained(a, { dtype: 'bfloat16' });
    try {
      expect(m2.outputWeight.dtype).toBe('bfloat16');
      saveToPretrained(m2, b, { maxShardBytes: 40_000 });
    } finally {
      m2.dispose();
    }
    const ba = bytesOf(a);
    expect(ba.size).toBeGreaterThan(50);
    expect(bytesOf(b)).toEqual(ba);
  });
});

/** A copy of a fixture whose tensors are edited by `edit`. */
function mutated(name: string, tag: string, edit: (t: Record<string, Tensor>) => void): string {
  const dir = join(tmp, `bad-${tag}`);
  const f = openSafetensors(join(FIXTURES, name, 'model.safetensors'));
  const all = f.readAll();
  f.close();
  try {
    edit(all);
    writeSafetensors(join(dir, 'model.safetensors'), all, { format: 'pt' });
  } finally {
    dispose(all);
  }
  copyFileSync(join(FIXTURES, name, 'config.json'), join(dir, 'config.json'));
  return dir;
}

describe('strict loading errors', () => {
  it('a missing tensor is named with the expected shape', () => {
    const dir = mutated('qwen2-base', 'missing', (t) => {
      t['model.layers.1.self_attn.k_proj.bias']!.dispose();
      delete t['model.layers.1.self_attn.k_proj.bias'];
    });
    expect(() => fromPretrained(dir)).toThrow(
      /missing tensor 'model\.layers\.1\.self_attn\.k_proj\.bias' \(the model expects shape \[16\]\)/,
    );
  });

  it('an unexpected tensor is named', () => {
    const dir = mutated('llama-base', 'unexpected', (t) => {
      t['model.layers.0.mlp.extra.weight'] = t['model.norm.weight']!;
    });
    expect(() => fromPretrained(dir)).toThrow(/unexpected tensor 'model\.layers\.0\.mlp\.extra\.weight' \[32\]/);
  });

  it('a mis-shaped tensor is named with both shapes (a stacked expert too)', () => {
    const dir = mutated('qwen3_moe-base', 'shape', (t) => {
      const w = t['model.layers.1.mlp.experts.2.up_proj.weight']!;
      t['model.layers.1.mlp.experts.2.up_proj.weight'] = w.reshape(32, 24);
      w.dispose();
    });
    expect(() => fromPretrained(dir)).toThrow(
      /tensor 'model\.layers\.1\.mlp\.experts\.2\.up_proj\.weight' has shape \[32,24\] in .*model\.safetensors; the model expects \[24,32\]/,
    );
  });

  it('an unknown model_type lists the supported ones', () => {
    const dir = join(tmp, 'bad-type');
    rmSync(dir, { recursive: true, force: true });
    const cfg = JSON.parse(readFileSync(join(FIXTURES, 'llama-base', 'config.json'), 'utf8'));
    mutated('llama-base', 'type', () => {});
    writeFileSync(join(tmp, 'bad-type', 'config.json'), JSON.stringify({ ...cfg, model_type: 'gpt2' }));
    expect(() => fromPretrained(join(tmp, 'bad-type'))).toThrow(
      /config\.json: unknown model_type "gpt2"; supported: llama, qwen2, qwen3, qwen3_moe/,
    );
  });

  it('a missing or malformed config.json names the file', () => {
    expect(() => fromPretrained(join(tmp, 'nowhere'))).toThrow(/cannot read .*nowhere\/config\.json/);
    const dir = mutated('llama-base', 'json', () => {});
    writeFileSync(join(dir, 'config.json'), '{ not json');
    expect(() => fromPretrained(dir)).toThrow(/config\.json is not valid JSON/);
  });
});
