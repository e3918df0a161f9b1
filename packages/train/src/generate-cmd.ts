import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, METADATA_FILE } from '@omnitrain/checkpoint';
import { ByteTokenizer, type TextTokenizer } from '@omnitrain/data';
import { type CausalLM, createModel, fromPretrained, generate } from '@omnitrain/models';
import { loadTokenizer } from './train-data.js';
import { readTrainMeta } from './train-state.js';
import { listCheckpoints } from './trainer.js';

/**
 * Resolve `DIR` to what `omnitrain generate` loads: a `dcp` checkpoint folder written by
 * `omnitrain train` (a run folder → its newest complete checkpoint), or a Hugging Face model
 * folder (config.json + safetensors, e.g. the run's `hf/` export).
 */
export function resolveModelDir(dir: string): string {
  if (existsSync(join(dir, METADATA_FILE)) || existsSync(join(dir, 'config.json'))) return dir;
  if (existsSync(join(dir, 'model', 'config.json'))) return join(dir, 'model'); // checkpoints of omnitrain train 0.1
  const latest = listCheckpoints(dir).at(-1);
  if (latest) return latest.dir;
  if (existsSync(join(dir, 'hf', 'config.json'))) return join(dir, 'hf');
  throw new Error(
    `generate: ${dir} is neither a dcp checkpoint (metadata.json), a run folder with complete checkpoints, nor a Hugging Face model folder (config.json)`,
  );
}

/**
 * Load the model (on one process, whatever world size saved it) and tokenizer of `dir` (see
 * {@link resolveModelDir}): a dcp checkpoint is read directly — its metadata holds the model's
 * config.json and the run's tokenizer, and the loader reassembles the ranks' shards.
 */
export function loadForGeneration(dir: string): { modelDir: string; model: CausalLM; tokenizer: TextTokenizer } {
  const modelDir = resolveModelDir(dir);
  if (existsSync(join(modelDir, 'config.json'))) {
    const tokenizer = existsSync(join(modelDir, 'tokenizer.json')) ? loadTokenizer(modelDir) : new ByteTokenizer();
    return { modelDir, model: fromPretrained(modelDir), tokenizer };
  }
  const meta = readTrainMeta(modelDir);
  const model = createModel(meta.model_config);
  try {
    // Only the model's tensors: the optimizer's moments are neither read nor materialized.
    loadCheckpoint(modelDir, { model: model.stateDict() }, { stateOf: 0, filter: (n) => n.startsWith('model.') });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { modelDir, model, tokenizer: loadTokenizer(meta.tokenizer) };
}

/** Generate text: returns the checkpoint or model folder used and the prompt followed by the new text. */
export function generateText(
  dir: string,
  prompt: string,
  opts: { maxNewTokens?: number; temperature?: number; topK?: number; seed?: number } = {},
): { modelDir: string; text: string } {
  const { modelDir, model, tokenizer } = loadForGeneration(dir);
  try {
    const ids = tokenizer.encode(prompt);
    const [out] = generate(model, [ids], {
      maxNewTokens: opts.maxNewTokens ?? 200,
      temperature: opts.temperature ?? 0.8,
      topK: opts.topK ?? 40,
      seed: opts.seed ?? 0,
    });
    return { modelDir, text: tokenizer.decode([...ids, ...out!]) };
  } finally {
    model.dispose();
  }
}
