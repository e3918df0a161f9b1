import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonlReader } from '@omnitrain/data';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';

async function all(r: JsonlReader) {
  const out: Array<[number, string]> = [];
  for (let l = await r.next(); l; l = await r.next()) out.push([l.line, l.text]);
  return out;
}

describe('JsonlReader streams lines in chunks', () => {
  const dir = tempDir();
  const big = 'é'.repeat(50_000); // 100,000 bytes: one line spans two 64 KiB chunks, a 2-byte char is cut between them
  const lines = ['\uFEFF{"a":1}', `{"big":"${big}"}`, '', '   ', '{"c":"日本語"}\r', '{"d":4}'];
  const file = join(dir, 'x.jsonl');
  writeFileSync(file, lines.join('\n')); // no trailing newline

  it('gives every non-blank line with its 1-based number (BOM and CR stripped, lines across chunks intact)', async () => {
    expect(await all(new JsonlReader(file))).toEqual([
      [1, '{"a":1}'],
      [2, `{"big":"${big}"}`],
      [5, '{"c":"日本語"}'],
      [6, '{"d":4}'],
    ]);
  });

  it('re-opens at a saved offset and line', async () => {
    const r = new JsonlReader(file);
    await r.next();
    await r.next();
    const again = new JsonlReader(file, r.offset, r.line);
    expect(await all(again)).toEqual([
      [5, '{"c":"日本語"}'],
      [6, '{"d":4}'],
    ]);
  });

  it('names the file it cannot open', async () => {
    await expect(new JsonlReader(join(dir, 'nope.jsonl')).next()).rejects.toThrow(/cannot open .*nope.jsonl/);
  });
});
