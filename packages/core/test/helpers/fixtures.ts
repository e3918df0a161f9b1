// Reads fixtures written by tools/fixtures/*.py and checks ops against them.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBackward, type Tensor, tidy } from '../../src/index.js';
import { expectClose, toleranceFor } from './compare.js';
import { readSafetensors, tensorFromBytes } from './safetensors.js';

const FIXTURE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

/** One recorded PyTorch call. */
export interface FixtureCase {
  name: string;
  attrs: Record<string, any>;
  inputs: Record<string, Tensor>;
  outputs: Tensor[];
  /** Output gradients (for outputs that have one), by output index. */
  gouts: (Tensor | undefined)[];
  /** Input gradients PyTorch computed, by input name. */
  grads: Record<string, Tensor>;
}

/** Load every case of `tools/fixtures/<family>.py`'s output. Tensors are kept (not in a tidy). */
export function loadFixture(family: string): FixtureCase[] {
  const path = join(FIXTURE_DIR, `${family}.safetensors`);
  if (!existsSync(path)) {
    throw new Error(`missing fixture ${path}; regenerate with: /usr/bin/python3 tools/fixtures/generate_all.py`);
  }
  const file = readSafetensors(path);
  const cases = JSON.parse(file.metadata.cases ?? '[]') as {
    name: string;
    attrs: Record<string, any>;
    inputs: string[];
    outputs: number;
    grads: string[];
  }[];
  const get = (key: string) => {
    const e = file.tensors.get(key);
    return e ? tensorFromBytes(e) : undefined;
  };
  return cases.map((c) => ({
    name: c.name,
    attrs: c.attrs,
    inputs: Object.fromEntries(c.inputs.map((k) => [k, get(`${c.name}.in.${k}`)!])),
    outputs: Array.from({ length: c.outputs }, (_, i) => get(`${c.name}.out.${i}`)!),
    gouts: Array.from({ length: c.outputs }, (_, i) => get(`${c.name}.gout.${i}`)),
    grads: Object.fromEntries(c.grads.map((k) => [k, get(`${c.name}.grad.${k}`)!])),
  }));
}

/**
 * Run `fn` on a case's inputs (float inputs made leaves that require grad), compare outputs
 * and, when PyTorch recorded them, input gradients. Tolerance: by dtype unless `rtol` is given.
 */
export function checkCase(
  c: FixtureCase,
  fn: (inputs: Record<string, Tensor>, attrs: Record<string, any>) => Tensor | Tensor[],
  opts: { rtol?: number; gradRtol?: number } = {},
): void {
  tidy(() => {
    const leaves: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(c.inputs)) {
      const leaf = v.detach();
      if (c.grads[k]) leaf.requiresGrad_(true);
      leaves[k] = leaf;
    }
    const out = fn(leaves, c.attrs);
    const outs = Array.isArray(out) ? out : [out];
    outs.forEach((o, i) => {
      const e = c.outputs[i]!;
      expectClose(o, e, opts.rtol ?? toleranceFor(e.dtype), `${c.name} output ${i}`);
    });
    const roots: Tensor[] = [];
    const gs: Tensor[] = [];
    outs.forEach((o, i) => {
      const g = c.gouts[i];
      if (g && o.requiresGrad) {
        roots.push(o);
        gs.push(g);
      }
    });
    if (!roots.length) return;
    runBackward(roots, gs);
    for (const [k, expected] of Object.entries(c.grads)) {
      const got = leaves[k]!.grad;
      if (!got) throw new Error(`${c.name}: no gradient for input '${k}'`);
      expectClose(got, expected, opts.gradRtol ?? opts.rtol ?? toleranceFor(expected.dtype), `${c.name} grad ${k}`);
      got.dispose();
      leaves[k]!.grad = null;
    }
  });
}
