import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parquetWriteFile } from 'hyparquet-writer';

export const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..', '..');
export const fixtures = join(here, 'fixtures');

/** The shipped corpus cut into paragraphs (speeches), as the text samples of the tests. */
export function paragraphs(limit = 400): string[] {
  const text = readFileSync(join(repoRoot, 'examples/data/tiny-shakespeare.txt'), 'utf8');
  return text
    .split(/\n\n+/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .slice(0, limit);
}

export function tempDir(prefix = 'omnitrain-data-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeJsonl(path: string, records: unknown[]): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n')}\n`);
  return path;
}

export function writeParquet(path: string, columns: Record<string, Array<string | null>>, rowGroupSize = 7): string {
  mkdirSync(dirname(path), { recursive: true });
  parquetWriteFile({
    filename: path,
    columnData: Object.entries(columns).map(([name, data]) => ({ name, data, type: 'STRING' as const })),
    rowGroupSize,
  });
  return path;
}

/** A folder with the paragraphs split over 3 JSONL files and 1 Parquet file (small row groups); returns texts in file order. */
export function writeTextFolder(dir: string, texts: string[]): string[] {
  const q = Math.ceil(texts.length / 4);
  writeJsonl(
    join(dir, 'a.jsonl'),
    texts.slice(0, q).map((text, i) => ({ id: i, text })),
  );
  writeJsonl(
    join(dir, 'b', 'c.jsonl'),
    texts.slice(q, 2 * q).map((text) => ({ text })),
  );
  writeParquet(join(dir, 'b', 'd.parquet'), { text: texts.slice(2 * q, 3 * q) });
  writeJsonl(
    join(dir, 'e.jsonl'),
    texts.slice(3 * q).map((text) => ({ text })),
  );
  // sorted walk order: a.jsonl, b/c.jsonl, b/d.parquet, e.jsonl
  return texts;
}
