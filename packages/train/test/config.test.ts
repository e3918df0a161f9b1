import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseOverrides, resolveConfig } from '@omnitrain/train';
import { describe, expect, it } from 'vitest';

const base = () => ({
  model: { config: { model_type: 'qwen2', vocab_size: 256 } },
  data: { path: 'corpus.jsonl' },
});

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('train config', () => {
  it('fills the defaults of a minimal config', () => {
    const c = resolveConfig(base());
    expect(c.train).toMatchObject({ steps: 100, global_batch: 8, lr: 3e-3, on_nonfinite: 'stop' });
    expect(c.parallel).toMatchObject({ strategy: 'fsdp', dp_shard: 0, backend: 'gloo' });
    expect(c.checkpoint).toMatchObject({
      every: 50,
      keep: 2,
      resume: 'auto',
      format: 'dcp',
      async: false,
      export_hf: false,
    });
    expect(c.data).toMatchObject({
      tokenizer: 'byte',
      seq_len: 64,
      buffer_size: 64,
      text_field: 'text',
      long_samples: 'truncate',
    });
    expect(c.train.peak_tflops).toBe(0);
  });

  it('data.path takes a list; booleans are checked', () => {
    const c = resolveConfig({ ...base(), data: { path: ['a.jsonl', 'b.parquet'] } });
    expect(c.data.path).toEqual(['a.jsonl', 'b.parquet']);
    expect(errorOf(() => resolveConfig({ ...base(), data: { path: [] } }))).toBe(
      "config: 'data.path' is []; allowed: a path or a list of paths",
    );
    expect(errorOf(() => resolveConfig(base(), parseOverrides(['--checkpoint.async', 'yes']).overrides))).toBe(
      'command line: \'checkpoint.async\' is "yes"; allowed: true or false',
    );
    expect(
      resolveConfig(base(), parseOverrides(['--checkpoint.export_hf', 'true']).overrides).checkpoint.export_hf,
    ).toBe(true);
  });

  it('dotted command-line overrides replace any key, including fields of the model config', () => {
    const { overrides, rest } = parseOverrides([
      'cfg.yaml',
      '--train.lr',
      '3e-4',
      '--parallel.dp_shard=2',
      '--model.config.hidden_size',
      '32',
    ]);
    expect(rest).toEqual(['cfg.yaml']);
    const c = resolveConfig(base(), overrides);
    expect(c.train.lr).toBe(3e-4);
    expect(c.parallel.dp_shard).toBe(2);
    expect(c.model.config).toEqual({ model_type: 'qwen2', vocab_size: 256, hidden_size: 32 });
  });

  it('--model.pretrained on the command line replaces the inline model config of the file', () => {
    const c = resolveConfig(base(), parseOverrides(['--model.pretrained', 'some/hf-folder']).overrides);
    expect(c.model.pretrained).toBe('some/hf-folder');
    expect(c.model.config).toBeUndefined();
  });

  it('a wrong type names the key, the value and what is allowed', () => {
    const cfg = { ...base(), train: { lr: 'fast' } };
    expect(errorOf(() => resolveConfig(cfg, new Map(), 'config x.yaml'))).toBe(
      'config x.yaml: \'train.lr\' is "fast"; allowed: a number > 0 and <= 10',
    );
  });

  it('an out-of-range integer', () => {
    expect(errorOf(() => resolveConfig({ ...base(), train: { steps: 0 } }))).toBe(
      "config: 'train.steps' is 0; allowed: an integer >= 1",
    );
    expect(errorOf(() => resolveConfig({ ...base(), train: { global_batch: 2.5 } }))).toContain(
      "'train.global_batch' is 2.5; allowed: an integer >= 1",
    );
  });

  it('a value outside an enumeration lists the allowed ones', () => {
    expect(errorOf(() => resolveConfig({ ...base(), train: { on_nonfinite: 'ignore' } }))).toBe(
      "config: 'train.on_nonfinite' is \"ignore\"; allowed: one of 'stop', 'skip'",
    );
    expect(errorOf(() => resolveConfig({ ...base(), data: { path: 'a.jsonl', long_samples: 'chunk' } }))).toBe(
      "config: 'data.long_samples' is \"chunk\"; allowed: one of 'truncate', 'split', 'skip'",
    );
    expect(resolveConfig(base(), new Map([['data.long_samples', 'split']])).data.long_samples).toBe('split');
  });

  it('an unknown key lists the keys of its section; an unknown section lists the sections', () => {
    expect(errorOf(() => resolveConfig({ ...base(), train: { learning_rate: 1 } }))).toMatch(
      /^config: unknown key 'train\.learning_rate'; allowed in 'train': train\.steps, train\.global_batch, train\.lr,/,
    );
    expect(errorOf(() => resolveConfig({ ...base(), optimizer: {} }))).toBe(
      "config: unknown section 'optimizer'; allowed: model, data, train, parallel, kernels, checkpoint, run",
    );
  });

  it('an override with an unknown key or a bad value says it came from the command line', () => {
    expect(errorOf(() => resolveConfig(base(), parseOverrides(['--train.lrr', '1']).overrides))).toMatch(
      /^command line: unknown key '--train\.lrr'; allowed: /,
    );
    expect(errorOf(() => resolveConfig(base(), parseOverrides(['--train.lr', '-1']).overrides))).toBe(
      "command line: 'train.lr' is -1; allowed: a number > 0 and <= 10",
    );
    expect(errorOf(() => parseOverrides(['--train.lr']))).toBe("command line: '--train.lr' needs a value");
  });

  it('the model needs exactly one of config or pretrained, and a model_type', () => {
    expect(errorOf(() => resolveConfig({ data: { path: 'x' } }))).toMatch(
      /'model' needs exactly one of 'model.config'/,
    );
    expect(errorOf(() => resolveConfig({ data: { path: 'x' }, model: { config: {}, pretrained: 'd' } }))).toMatch(
      /needs exactly one/,
    );
    expect(errorOf(() => resolveConfig({ data: { path: 'x' }, model: { config: { vocab_size: 3 } } }))).toBe(
      "config: 'model.config.model_type' is undefined; allowed: a registered architecture name such as 'qwen2'",
    );
    expect(errorOf(() => resolveConfig({ model: base().model }))).toBe(
      "config: 'data.path' is missing; allowed: a JSONL/Parquet file or folder",
    );
  });

  it('loadConfig reads YAML and reports unreadable files and bad YAML with the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omnitrain-cfg-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'model:\n  config:\n    model_type: qwen2\ndata:\n  path: c.jsonl\ntrain:\n  lr: 1.0e-3\n');
    expect(loadConfig(good).train.lr).toBe(1e-3);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'model: [unclosed\n');
    expect(errorOf(() => loadConfig(bad))).toMatch(new RegExp(`^config ${bad}: not valid YAML`));
    expect(errorOf(() => loadConfig(join(dir, 'none.yaml')))).toMatch(/none\.yaml: cannot read/);
    const typo = join(dir, 'typo.yaml');
    writeFileSync(typo, 'model:\n  config:\n    model_type: qwen2\ndata:\n  path: c.jsonl\nkernels:\n  cpu: cuda\n');
    expect(errorOf(() => loadConfig(typo))).toBe(
      `config ${typo}: 'kernels.cpu' is "cuda"; allowed: one of 'native', 'reference'`,
    );
  });
});
