import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

/** The `omnitrain train` configuration (YAML), after defaults, validation and overrides. */
export interface TrainConfig {
  model: {
    /** A Hugging Face config.json as an object (`model_type`, sizes...). */
    config?: Record<string, unknown>;
    /** A Hugging Face folder (config.json + safetensors) to start from, instead of `config`. */
    pretrained?: string;
    /** Scale of the initial embedding weights (tied embeddings need small ones). */
    init_embedding_std: number;
  };
  data: {
    /** JSONL/Parquet file(s) or folder(s) of them, with a text field (a list in YAML for several). */
    path: string | string[];
    text_field: string;
    /** 'byte' (UTF-8 bytes, ids 0-255, then `<|endoftext|>` = 256 ...) or the path of a Hugging Face tokenizer.json. */
    tokenizer: string;
    /** Token budget of one packed row (samples are packed into rows of this many tokens, attention stays inside each sample). */
    seq_len: number;
    /** Samples kept in each packing buffer (first-fit chooses among them). */
    buffer_size: number;
    /**
     * Samples longer than `seq_len`: 'truncate' (keep the first `seq_len` tokens, drop the rest),
     * 'split' (train on all of it: consecutive pieces of at most `seq_len` tokens, each packed as
     * a sample of its own) or 'skip'.
     */
    long_samples: 'truncate' | 'split' | 'skip';
  };
  train: {
    /** Number of optimizer steps of the whole run (resume continues up to it). */
    steps: number;
    /** Sequences per step over all ranks (divided by the data-parallel size). */
    global_batch: number;
    lr: number;
    min_lr_ratio: number;
    warmup_steps: number;
    weight_decay: number;
    max_grad_norm: number;
    seed: number;
    /** What a NaN/Inf loss or gradient norm does: stop the run, or skip the step. */
    on_nonfinite: 'stop' | 'skip';
    /** Stop this run after step N (with a checkpoint) although the schedule spans `steps`; 0 = run to the end. */
    stop_after: number;
    /** Write a Chrome-trace timeline (RUN_DIR/trace-rank<R>.json) of the first N steps of this run; 0 = off. */
    profile: number;
    /** Log a line every N steps. */
    log_every: number;
    /** Peak dense TFLOP/s of one rank's device for the MFU estimate; 0 = measure the fp32 FMA peak (CPU, native kernels) or 'n/a'. */
    peak_tflops: number;
  };
  parallel: {
    /** 'fsdp' (FSDP2 over the dp_shard mesh dimension) or 'none' (one rank). */
    strategy: 'fsdp' | 'none';
    /** Ranks that shard parameters; 0 = the whole world. */
    dp_shard: number;
    dp_replicate: number;
    /** Process-group backend. */
    backend: string;
  };
  kernels: {
    /** 'native' (the @omnitrain/kernels-cpu plugin when it built) or 'reference' (core's). */
    cpu: 'native' | 'reference';
  };
  checkpoint: {
    /** Save every N steps (and at the end); 0 = only at the end. */
    every: number;
    /** Checkpoints kept (older are deleted). */
    keep: number;
    /** 'auto' resumes from the latest complete checkpoint of the run folder; 'never' starts fresh. */
    resume: 'auto' | 'never';
    /** Format of the training state: 'dcp' (sharded; model, optimizer, schedule, data, RNG, step; any world size on resume). */
    format: string;
    /** Copy to host and write in a background thread while training goes on. */
    async: boolean;
    /** Also write the model as a Hugging Face folder (RUN_DIR/hf: config.json + safetensors) at the end of the run. */
    export_hf: boolean;
  };
  run: {
    /** Run folder: metrics.jsonl, checkpoints/, plot.png. */
    dir: string;
  };
}

type Kind =
  | { t: 'int'; min: number; max?: number }
  | { t: 'number'; min?: number; max?: number; exclusiveMin?: boolean }
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'paths' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'object' };

/** Schema: dotted key → kind and default (undefined: optional without default). */
const SCHEMA: Record<string, { kind: Kind; def?: unknown; doc: string }> = {
  'model.config': { kind: { t: 'object' }, doc: 'a Hugging Face config.json object' },
  'model.pretrained': { kind: { t: 'string' }, doc: 'a Hugging Face model folder' },
  'model.init_embedding_std': { kind: { t: 'number', min: 0, exclusiveMin: true }, def: 0.02, doc: '' },
  'data.path': { kind: { t: 'paths' }, doc: 'JSONL/Parquet files or folders' },
  'data.text_field': { kind: { t: 'string' }, def: 'text', doc: '' },
  'data.tokenizer': { kind: { t: 'string' }, def: 'byte', doc: "'byte' or a tokenizer.json path" },
  'data.seq_len': { kind: { t: 'int', min: 2, max: 65536 }, def: 64, doc: '' },
  'data.buffer_size': { kind: { t: 'int', min: 1 }, def: 64, doc: '' },
  'data.long_samples': {
    kind: { t: 'enum', values: ['truncate', 'split', 'skip'] },
    def: 'truncate',
    doc: 'samples longer than seq_len',
  },
  'train.steps': { kind: { t: 'int', min: 1 }, def: 100, doc: '' },
  'train.global_batch': { kind: { t: 'int', min: 1 }, def: 8, doc: '' },
  'train.lr': { kind: { t: 'number', min: 0, exclusiveMin: true, max: 10 }, def: 3e-3, doc: '' },
  'train.min_lr_ratio': { kind: { t: 'number', min: 0, max: 1 }, def: 0.1, doc: '' },
  'train.warmup_steps': { kind: { t: 'int', min: 0 }, def: 10, doc: '' },
  'train.weight_decay': { kind: { t: 'number', min: 0 }, def: 0.1, doc: '' },
  'train.max_grad_norm': { kind: { t: 'number', min: 0, exclusiveMin: true }, def: 1.0, doc: '' },
  'train.seed': { kind: { t: 'int', min: 0 }, def: 0, doc: '' },
  'train.on_nonfinite': { kind: { t: 'enum', values: ['stop', 'skip'] }, def: 'stop', doc: '' },
  'train.stop_after': { kind: { t: 'int', min: 0 }, def: 0, doc: '' },
  'train.profile': { kind: { t: 'int', min: 0 }, def: 0, doc: '' },
  'train.log_every': { kind: { t: 'int', min: 1 }, def: 10, doc: '' },
  'train.peak_tflops': { kind: { t: 'number', min: 0 }, def: 0, doc: '' },
  'parallel.strategy': { kind: { t: 'enum', values: ['fsdp', 'none'] }, def: 'fsdp', doc: '' },
  'parallel.dp_shard': { kind: { t: 'int', min: 0 }, def: 0, doc: '' },
  'parallel.dp_replicate': { kind: { t: 'int', min: 1 }, def: 1, doc: '' },
  'parallel.backend': { kind: { t: 'string' }, def: 'gloo', doc: '' },
  'kernels.cpu': { kind: { t: 'enum', values: ['native', 'reference'] }, def: 'native', doc: '' },
  'checkpoint.every': { kind: { t: 'int', min: 0 }, def: 50, doc: '' },
  'checkpoint.keep': { kind: { t: 'int', min: 1 }, def: 2, doc: '' },
  'checkpoint.resume': { kind: { t: 'enum', values: ['auto', 'never'] }, def: 'auto', doc: '' },
  'checkpoint.format': { kind: { t: 'string' }, def: 'dcp', doc: '' },
  'checkpoint.async': { kind: { t: 'bool' }, def: false, doc: '' },
  'checkpoint.export_hf': { kind: { t: 'bool' }, def: false, doc: '' },
  'run.dir': { kind: { t: 'string' }, def: 'runs/omnitrain', doc: '' },
};

/** Every key the configuration accepts, dotted (`train.lr`). */
export const CONFIG_KEYS: readonly string[] = Object.keys(SCHEMA);

/** An invalid configuration: the message names the key, the value and what is allowed. */
export class ConfigError extends Error {}

function allowed(k: Kind): string {
  switch (k.t) {
    case 'int':
      return `an integer >= ${k.min}${k.max !== undefined ? ` and <= ${k.max}` : ''}`;
    case 'number':
      return `a number ${k.exclusiveMin ? '>' : '>='} ${k.min ?? '-inf'}${k.max !== undefined ? ` and <= ${k.max}` : ''}`;
    case 'string':
      return 'a string';
    case 'bool':
      return 'true or false';
    case 'paths':
      return 'a path or a list of paths';
    case 'enum':
      return `one of ${k.values.map((v) => `'${v}'`).join(', ')}`;
    case 'object':
      return 'a mapping';
  }
}

function check(key: string, v: unknown, where: string): unknown {
  const { kind } = SCHEMA[key]!;
  const bad = () => new ConfigError(`${where}: '${key}' is ${JSON.stringify(v)}; allowed: ${allowed(kind)}`);
  switch (kind.t) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < kind.min || (kind.max !== undefined && v > kind.max))
        throw bad();
      return v;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw bad();
      if (kind.min !== undefined && (kind.exclusiveMin ? v <= kind.min : v < kind.min)) throw bad();
      if (kind.max !== undefined && v > kind.max) throw bad();
      return v;
    case 'string':
      if (typeof v !== 'string' || v === '') throw bad();
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw bad();
      return v;
    case 'paths':
      if (typeof v === 'string' && v !== '') return v;
      if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && x !== '')) return v;
      throw bad();
    case 'enum':
      if (typeof v !== 'string' || !kind.values.includes(v)) throw bad();
      return v;
    case 'object':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad();
      return v;
  }
}

function flatten(obj: Record<string, unknown>, where: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [section, body] of Object.entries(obj)) {
    if (!CONFIG_KEYS.some((k) => k.startsWith(`${section}.`))) {
      const sections = [...new Set(CONFIG_KEYS.map((k) => k.split('.')[0]))];
      throw new ConfigError(`${where}: unknown section '${section}'; allowed: ${sections.join(', ')}`);
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new ConfigError(`${where}: '${section}' is ${JSON.stringify(body)}; allowed: a mapping`);
    }
    for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
      const key = `${section}.${k}`;
      if (!(key in SCHEMA)) {
        const keys = CONFIG_KEYS.filter((c) => c.startsWith(`${section}.`));
        throw new ConfigError(`${where}: unknown key '${key}'; allowed in '${section}': ${keys.join(', ')}`);
      }
      out.set(key, v);
    }
  }
  return out;
}

/** Parse a command-line value: numbers, booleans, null, JSON objects; strings otherwise. */
function parseValue(s: string): unknown {
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s)) return Number(s);
  if (s === 'true' || s === 'false') return s === 'true';
  if (s.startsWith('{')) {
    try {
      return JSON.parse(s);
    } catch {
      return s;
    }
  }
  return s;
}

/**
 * Split `--a.b value` / `--a.b=value` overrides from other arguments. Returns the overrides
 * (dotted key → parsed value) and the rest, in order.
 */
export function parseOverrides(args: readonly string[]): { overrides: Map<string, unknown>; rest: string[] } {
  const overrides = new Map<string, unknown>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--([a-z_]+\.[a-z_.]+)(?:=(.*))?$/s.exec(a);
    if (!m) {
      rest.push(a);
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      value = args[++i];
      if (value === undefined) throw new ConfigError(`command line: '--${m[1]}' needs a value`);
    }
    overrides.set(m[1]!, parseValue(value));
  }
  return { overrides, rest };
}

/**
 * Validate a parsed configuration object plus dotted overrides (`model.config.hidden_size` sets
 * one field of the model's config) and fill the defaults. `where` names the source in errors.
 */
export function resolveConfig(
  raw: unknown,
  overrides: ReadonlyMap<string, unknown> = new Map(),
  where = 'config',
): TrainConfig {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${where}: expected a mapping at the top`);
  const flat = flatten(raw as Record<string, unknown>, where);
  // `--model.pretrained DIR` on the command line replaces the file's inline model config.
  if (overrides.has('model.pretrained') && ![...overrides.keys()].some((k) => k.startsWith('model.config')))
    flat.delete('model.config');
  for (const [k, v] of overrides) {
    if (k.startsWith('model.config.')) {
      const cur = (flat.get('model.config') as Record<string, unknown> | undefined) ?? {};
      flat.set('model.config', { ...cur, [k.slice('model.config.'.length)]: v });
      continue;
    }
    if (!(k in SCHEMA)) {
      throw new ConfigError(`command line: unknown key '--${k}'; allowed: ${CONFIG_KEYS.join(', ')}`);
    }
    flat.set(k, v);
  }
  const out: Record<string, Record<string, unknown>> = {};
  for (const [key, spec] of Object.entries(SCHEMA)) {
    const [section, name] = key.split('.') as [string, string];
    out[section] ??= {};
    const v = flat.has(key) ? check(key, flat.get(key), overrides.has(key) ? 'command line' : where) : spec.def;
    if (v !== undefined) out[section]![name] = v;
  }
  const cfg = out as unknown as TrainConfig;
  if (!cfg.model.config === !cfg.model.pretrained) {
    throw new ConfigError(
      `${where}: 'model' needs exactly one of 'model.config' (a Hugging Face config.json mapping) or 'model.pretrained' (a folder)`,
    );
  }
  if (cfg.model.config && typeof cfg.model.config.model_type !== 'string') {
    throw new ConfigError(
      `${where}: 'model.config.model_type' is ${JSON.stringify(cfg.model.config.model_type)}; allowed: a registered architecture name such as 'qwen2'`,
    );
  }
  if (!cfg.data.path)
    throw new ConfigError(`${where}: 'data.path' is missing; allowed: a JSONL/Parquet file or folder`);
  return cfg;
}

/** Read a YAML file, apply the overrides and validate (relative `data.path` and `model.pretrained` are resolved from the file). */
export function loadConfig(path: string, overrides: ReadonlyMap<string, unknown> = new Map()): TrainConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`config ${path}: cannot read (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`config ${path}: not valid YAML: ${(e as Error).message}`);
  }
  return resolveConfig(raw, overrides, `config ${path}`);
}
