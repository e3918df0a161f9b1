// Hugging Face checkpoint directories: fromPretrained (config.json + safetensors, strict) and
// saveToPretrained (config.json + safetensors, sharded by size).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensorsDir, writeSafetensorsDir } from '@omnitrain/checkpoint';
import { type DType, dispose, noGrad, stack, type Tensor } from '@omnitrain/core';
import { architectureFor } from './architectures.js';
import { toHfConfig } from './config.js';
import type { CausalLM } from './model.js';
import { hfStateDict } from './plan.js';

/** Options of {@link fromPretrained}. */
export interface FromPretrainedOptions {
  /** Device of the parameters (default `cpu`). */
  device?: string;
  /** Parameter dtype (default float32); stored tensors are converted. */
  dtype?: DType;
}

/** Keys Hugging Face ignores when loading (old rotary buffers). */
const IGNORED = /(^|\.)rotary_emb\.inv_freq$/;

const fmt = (s: readonly number[]) => JSON.stringify(s);

/** Read and parse `dir/config.json`, with errors naming the file. */
export function readConfigJson(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`fromPretrained: cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`fromPretrained: ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Load a Hugging Face model directory: `config.json` picks the architecture by `model_type`
 * (through the registry) and `model.safetensors` or `model.safetensors.index.json` + shards
 * give the weights. Strict: every parameter must be present with its exact shape and nothing
 * else may be (except `lm_head.weight` of a tied model and old `rotary_emb.inv_freq` buffers);
 * every problem is listed, naming the tensor and both shapes, before anything is read.
 * Stacked expert weights are assembled from Hugging Face's per-expert tensors.
 */
export function fromPretrained(dir: string, opts: FromPretrainedOptions = {}): CausalLM {
  const json = readConfigJson(dir);
  const where = join(dir, 'config.json');
  const arch = architectureFor(json.model_type, where);
  const config = arch.parseConfig(json, where);
  const device = opts.device ?? 'cpu';
  const dtype = opts.dtype ?? 'float32';
  const model = arch.create(config, { device: 'meta', dtype });
  const plan = model.parallelPlan();
  const params = new Map(model.namedParameters());
  const src = openSafetensorsDir(dir);
  try {
    const problems: string[] = [];
    const used = new Set<string>();
    for (const m of plan.hf) {
      const p = params.get(m.name)!;
      const want = m.stacked ? p.shape.slice(1) : p.shape;
      for (const n of m.hfNames) {
        used.add(n);
        if (!src.has(n)) {
          problems.push(`missing tensor '${n}' (the model expects shape ${fmt(want)})`);
          continue;
        }
        const info = src.info(n);
        if (fmt(info.shape) !== fmt(want)) {
          problems.push(`tensor '${n}' has shape ${fmt(info.shape)} in ${info.file}; the model expects ${fmt(want)}`);
        }
      }
    }
    for (const k of src.keys()) {
      if (used.has(k) || IGNORED.test(k) || (config.tieWordEmbeddings && k === 'lm_head.weight')) continue;
      problems.push(`unexpected tensor '${k}' ${fmt(src.info(k).shape)} (not a parameter of ${arch.hfClass})`);
    }
    if (problems.length) {
      throw new Error(
        `fromPretrained(${dir}): ${problems.length} problem(s) loading ${arch.hfClass}:\n  ${problems.join('\n  ')}`,
      );
    }
    noGrad(() => {
      for (const m of plan.hf) {
        const p = params.get(m.name)!;
        let t: Tensor;
        if (!m.stacked) t = src.readTensor(m.hfNames[0]!, { device, dtype });
        else {
          const parts = m.hfNames.map((n) => src.readTensor(n, { device, dtype }));
          t = stack(parts, 0);
          dispose(parts);
        }
        p.setData(t);
        t.dispose();
      }
    });
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    src.close();
  }
  return model;
}

/** Options of {@link saveToPretrained}. */
export interface SaveOptions {
  /** Most bytes per shard (number or `'5GB'`-style string); default `'5GB'`. */
  maxShardBytes?: number | string;
}

/**
 * Write `model` as a Hugging Face directory: `config.json` (with `architectures` and
 * `torch_dtype`) and `model.safetensors` (or shards + index), tensors under Hugging Face names
 * (stacked experts split per expert, a tied `lm_head` omitted), bytes exactly as held.
 */
export function saveToPretrained(model: CausalLM, dir: string, opts: SaveOptions = {}): void {
  const cfg = toHfConfig(model.config);
  const arch = architectureFor(model.config.modelType);
  cfg.architectures = [arch.hfClass];
  cfg.torch_dtype = model.outputWeight.dtype;
  const tensors = hfStateDict(model);
  try {
    mkdirSync(dir, { recursive: true });
    writeSafetensorsDir(dir, tensors, { maxShardBytes: opts.maxShardBytes, metadata: { format: 'pt' } });
    writeFileSync(join(dir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  } finally {
    dispose([...tensors.values()]);
  }
}
