import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fromPretrained, generate } from '@omnitrain/models';
import { listCheckpoints } from './trainer.js';

/** Resolve `DIR` to a Hugging Face model folder: a run folder (latest checkpoint), a checkpoint step folder, or a model folder. */
export function resolveModelDir(dir: string): string {
  if (existsSync(join(dir, 'config.json'))) return dir;
  if (existsSync(join(dir, 'model', 'config.json'))) return join(dir, 'model');
  const latest = listCheckpoints(dir).at(-1);
  if (latest) return join(latest.dir, 'model');
  throw new Error(
    `generate: ${dir} is neither a model folder (config.json), a checkpoint (model/config.json) nor a run folder with complete checkpoints`,
  );
}

/** Generate text from a byte-level model: returns the prompt followed by the new text. */
export function generateText(
  dir: string,
  prompt: string,
  opts: { maxNewTokens?: number; temperature?: number; topK?: number; seed?: number } = {},
): { modelDir: string; text: string } {
  const modelDir = resolveModelDir(dir);
  const model = fromPretrained(modelDir);
  try {
    const ids = [...Buffer.from(prompt, 'utf8')];
    const [out] = generate(model, [ids], {
      maxNewTokens: opts.maxNewTokens ?? 200,
      temperature: opts.temperature ?? 0.8,
      topK: opts.topK ?? 40,
      seed: opts.seed ?? 0,
    });
    return { modelDir, text: Buffer.from([...ids, ...out!].map((v) => v & 255)).toString('utf8') };
  } finally {
    model.dispose();
  }
}
