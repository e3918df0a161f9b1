// Throughput of @omnitrain/data on the shipped corpus: tokens/s for read + tokenize + pack, with
// the built-in byte tokenizer and with a byte-level BPE tokenizer.json (@huggingface/tokenizers),
// from JSONL and from Parquet; plus tokenization alone for comparison. Never asserted anywhere.
//
//   pnpm bench:data                       (root script: builds core+data, then runs this)
//   node --experimental-strip-types bench/data/bench-data.ts [--repeat 20] [--budget 4096] [--out bench/results/data.md]
//
// Reads the built package (packages/data/dist): build first (`pnpm -r build` or the root script).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = join(root, 'packages/data/dist/index.js');
if (!existsSync(dist)) {
  console.error(`bench-data: ${dist} is missing; build first: (cd packages/data && pnpm build)`);
  process.exit(1);
}
const data = (await import(pathToFileURL(dist).href)) as typeof import('../../packages/data/src/index.ts');
const { ByteTokenizer, HfTokenizer, PackedDataLoader } = data;

const { values: args } = parseArgs({
  options: {
    repeat: { type: 'string', default: '20' },
    budget: { type: 'string', default: '4096' },
    out: { type: 'string' },
  },
});
const repeat = Number(args.repeat);
const budget = Number(args.budget);
const ex = join(root, 'examples/data');
const bpe = await HfTokenizer.fromFile(join(root, 'packages/data/test/fixtures/bpe-shakespeare'));
const byte = new ByteTokenizer();
const texts = readFileSync(join(ex, 'tiny-shakespeare.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { text: string }).text);

type Row = { what: string; tokenizer: string; tokens: number; seconds: number };
const rows: Row[] = [];

async function pipeline(tokName: string, tok: typeof byte | typeof bpe, file: string): Promise<void> {
  // the same file listed `repeat` times = `repeat` passes over the corpus
  const loader = new PackedDataLoader({
    sources: [{ path: Array(repeat).fill(join(ex, file)), name: file }],
    tokenizer: tok,
    tokenBudget: budget,
  });
  const t0 = performance.now();
  let tokens = 0;
  for (let b = await loader.nextHost(); b; b = await loader.nextHost()) tokens += b.numTokens;
  rows.push({
    what: `${file} → tokenize → pack (budget ${budget})`,
    tokenizer: tokName,
    tokens,
    seconds: (performance.now() - t0) / 1000,
  });
}

function encodeOnly(tokName: string, tok: typeof byte | typeof bpe): void {
  const t0 = performance.now();
  let tokens = 0;
  for (let r = 0; r < repeat; r++) for (const t of texts) tokens += tok.encode(t).length;
  rows.push({
    what: 'encode only (strings in memory)',
    tokenizer: tokName,
    tokens,
    seconds: (performance.now() - t0) / 1000,
  });
}

// warm-up (JIT, file cache)
encodeOnly('warm-up', bpe);
rows.length = 0;
for (const [name, tok] of [
  ['byte', byte],
  ['BPE (859 ids, byte-level)', bpe],
] as const) {
  encodeOnly(name, tok);
  await pipeline(name, tok, 'tiny-shakespeare.jsonl');
  await pipeline(name, tok, 'tiny-shakespeare.parquet');
}

const lines = [
  `# @omnitrain/data throughput`,
  '',
  `Node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} (${cpus().length} cores), single thread; corpus examples/data (95,962 bytes, 713 speeches) × ${repeat}.`,
  `Command: \`node --experimental-strip-types bench/data/bench-data.ts --repeat ${repeat} --budget ${budget}\``,
  '',
  '| what | tokenizer | tokens | seconds | tokens/s |',
  '| --- | --- | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.what} | ${r.tokenizer} | ${r.tokens} | ${r.seconds.toFixed(3)} | ${Math.round(r.tokens / r.seconds).toLocaleString('en-US')} |`,
  ),
  '',
];
console.log(lines.join('\n'));
if (args.out) {
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, lines.join('\n'));
}
