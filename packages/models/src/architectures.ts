// The architectures registered in `registry.models`, by Hugging Face `model_type`.
import { getRegistry, type Plugin, type Registry } from '@omnitrain/core';
import { type ModelConfig, type ModelType, parseConfig, SUPPORTED_MODEL_TYPES } from './config.js';
import { CausalLM, type ModelOptions } from './model.js';

/** What `registry.models.get(model_type)` holds. */
export interface Architecture {
  /** Hugging Face `model_type`. */
  readonly modelType: ModelType;
  /** Hugging Face class name written to `config.json`'s `architectures`. */
  readonly hfClass: string;
  /** Parse a `config.json` object of this architecture. */
  parseConfig(json: unknown, where?: string): ModelConfig;
  /** Build the model (random init, or on `meta` for loading). */
  create(config: ModelConfig, opts?: ModelOptions): CausalLM;
}

const HF_CLASS: Record<ModelType, string> = {
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  qwen3_moe: 'Qwen3MoeForCausalLM',
};

/** The architecture entries this package provides. */
export const ARCHITECTURES: readonly Architecture[] = SUPPORTED_MODEL_TYPES.map((modelType) => ({
  modelType,
  hfClass: HF_CLASS[modelType],
  parseConfig: (json: unknown, where?: string) => {
    const cfg = parseConfig(json, where);
    if (cfg.modelType !== modelType) {
      throw new Error(
        `config${where ? ` (${where})` : ''}: model_type '${cfg.modelType}' given to the '${modelType}' architecture`,
      );
    }
    return cfg;
  },
  create: (config: ModelConfig, opts?: ModelOptions) => new CausalLM(config, opts),
}));

/** The plugin object: `registry.use(plugin)` registers llama, qwen2, qwen3 and qwen3_moe in `registry.models`. */
export const plugin: Plugin = {
  name: 'models',
  version: '0.1.0',
  coreRange: '^0.1',
  setup(r) {
    for (const a of ARCHITECTURES) r.models.register(a.modelType, a);
  },
};

/**
 * The architecture registered for `modelType` (the models plugin is installed in the registry
 * first if it is not). An unknown type is an error listing the registered ones.
 */
export function architectureFor(modelType: unknown, where = '', registry: Registry = getRegistry()): Architecture {
  if (!registry.plugins().some((p) => p.name === plugin.name)) registry.use(plugin);
  if (typeof modelType !== 'string' || !registry.models.has(modelType)) {
    throw new Error(
      `${where ? `${where}: ` : ''}unknown model_type ${JSON.stringify(modelType)}; supported: ${registry.models.names().join(', ')}`,
    );
  }
  return registry.models.get(modelType) as Architecture;
}

/** Build a model from a `config.json` object (or a parsed config), through the registry. */
export function createModel(config: ModelConfig | Record<string, unknown>, opts: ModelOptions = {}): CausalLM {
  if ('raw' in config && 'modelType' in config)
    return architectureFor(config.modelType).create(config as ModelConfig, opts);
  const a = architectureFor((config as Record<string, unknown>).model_type);
  return a.create(a.parseConfig(config), opts);
}
