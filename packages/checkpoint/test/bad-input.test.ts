import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors, openSafetensorsDir, writeSafetensors, writeSafetensorsDir } from '../src/index.js';
import { put, specFile, tempDir } from './helpers.js';

const e = (dtype: string, shape: unknown, offs: unknown) => ({ dtype, shape, data_offsets: offs });

describe('bad input: each a clear error naming the file', () => {
  const dir = tempDir('bad');
  const good = specFile({ a: e('F32', [2], [0, 8]), b: e('F16', [2], [8, 12]) }, new Uint8Array(12));

  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /0 bytes, shorter than the 8-byte header length/],
    ['truncated length prefix', good.subarray(0, 5), /5 bytes, shorter than the 8-byte header length/],
    ['truncated inside the header', good.subarray(0, 30), /header length \d+ exceeds the file size \(30 bytes/],
    [
      'truncated inside the data',
      good.subarray(0, good.length - 3),
      /tensor "b": data_offsets \[8, 12\] run past the data section \(9 bytes\)/,
    ],
    [
      'oversized header length',
      (() => {
        const b = good.slice();
        new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true);
        return b;
      })(),
      /header length 9223372036854775808 exceeds the limit of 100000000 bytes/,
    ],
    [
      'header length larger than the file',
      (() => {
        const b = good.slice();
        new DataView(b.buffer).setBigUint64(0, 5000n, true);
        return b;
      })(),
      /header length 5000 exceeds the file size/,
    ],
    ['header length 0', specFile('', []), /header length 0 is too small/],
    ['non-JSON header', specFile('{"a": {"dtype": "F32",', []), /header is not valid JSON/],
    ['header not an object', specFile('[1,2,3]', []), /header does not start with '\{'/],
    ['header JSON null', specFile('{}null', []), /header is not valid JSON/],
    ['invalid UTF-8', specFile('{"\xff":1}', []).map((x, i) => (i === 10 ? 0xff : x)), /not valid UTF-8/],
    [
      'overlapping offsets',
      specFile({ a: e('F32', [2], [0, 8]), b: e('F32', [1], [4, 8]) }, new Uint8Array(8)),
      /tensors "a" \[0, 8\] and "b" \[4, 8\] overlap/,
    ],
    [
      'gap in coverage',
      specFile({ a: e('F32', [1], [0, 4]), b: e('F32', [1], [8, 12]) }, new Uint8Array(12)),
      /bytes \[4, 8\) of the data section belong to no tensor/,
    ],
    [
      'trailing bytes after the last tensor',
      specFile({ a: e('F32', [1], [0, 4]) }, new Uint8Array(6)),
      /bytes \[4, 6\) at the end of the data section belong to no tensor/,
    ],
    ['out-of-range offsets', specFile({ a: e('F32', [2], [0, 8]) }, new Uint8Array(4)), /run past the data section/],
    [
      'negative offsets',
      specFile({ a: e('F32', [1], [-4, 0]) }, new Uint8Array(4)),
      /data_offsets must be two non-negative integers/,
    ],
    ['reversed offsets', specFile({ a: e('U8', [0], [4, 0]) }, new Uint8Array(4)), /end before they begin/],
    ['fractional offsets', specFile({ a: e('U8', [1], [0, 0.5]) }, new Uint8Array(1)), /two non-negative integers/],
    [
      'unknown dtype',
      specFile({ a: e('F128', [1], [0, 16]) }, new Uint8Array(16)),
      /tensor "a": unknown dtype "F128"; known: F64, F32/,
    ],
    [
      'missing dtype',
      specFile({ a: { shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)),
      /tensor "a": unknown dtype undefined/,
    ],
    [
      'wrong length for shape',
      specFile({ a: e('F32', [3], [0, 8]) }, new Uint8Array(8)),
      /tensor "a": data_offsets \[0, 8\] hold 8 bytes but shape \[3\] F32 needs 12/,
    ],
    ['negative dim', specFile({ a: e('F32', [-1], [0, 0]) }, []), /shape \[-1\] must hold non-negative integers/],
    ['string dim', specFile({ a: e('F32', ['2'], [0, 8]) }, new Uint8Array(8)), /must hold non-negative integers/],
    ['overflowing shape', specFile({ a: e('U8', [2 ** 30, 2 ** 30], [0, 0]) }, []), /too many elements/],
    [
      'deeply nested entry',
      specFile(`{"a":${'['.repeat(200000)}${']'.repeat(200000)}}`, []),
      /tensor "a": entry must be an object/,
    ],
    [
      'deeply nested metadata',
      specFile(`{"__metadata__":{"k":${'{"x":'.repeat(100000)}1${'}'.repeat(100000)}}}`, []),
      /__metadata__\["k"\] must be a string/,
    ],
    ['entry not an object', specFile({ a: [1, 2] }, []), /tensor "a": entry must be an object/],
    [
      'metadata not string to string',
      specFile({ __metadata__: { n: 1 } }, []),
      /__metadata__\["n"\] must be a string, got 1/,
    ],
    ['metadata not an object', specFile({ __metadata__: 'x' }, []), /__metadata__ must be an object of strings/],
    [
      'duplicate tensor names',
      specFile(
        '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        [0],
      ),
      /header names tensor "a" twice/,
    ],
  ];

  for (const [what, bytes, message] of cases) {
    it(what, () => {
      const name = `${what.replace(/\W+/g, '-')}.safetensors`;
      const path = put(dir, name, bytes);
      let err: unknown;
      try {
        openSafetensors(path).close();
      } catch (x) {
        err = x;
      }
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`safetensors ${path}: `);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('a missing file says which', () => {
    expect(() => openSafetensors(join(dir, 'nope.safetensors'))).toThrow(/nope\.safetensors/);
    expect(() => openSafetensorsDir(join(dir, 'nodir'))).toThrow(/nodir/);
  });

  it('a bad index: not JSON, shard outside the directory, missing shard, tensor absent from its shard', () => {
    const d = join(dir, 'index');
    mkdirSync(d);
    const idx = join(d, 'model.safetensors.index.json');
    put(d, 'model-00001-of-00001.safetensors', specFile({ a: e('U8', [1], [0, 1]) }, [5]));
    const check = (index: string, msg: RegExp) => {
      writeFileSync(idx, index);
      expect(() => openSafetensorsDir(d)).toThrow(msg);
    };
    check('{"weight_map": ', /model\.safetensors\.index\.json: not valid JSON/);
    check('[]', /index\.json: not a JSON object/);
    check(
      '{"weight_map": {"a": "../x.safetensors"}}',
      /tensor 'a': shard file name "\.\.\/x\.safetensors" is not a plain file name/,
    );
    check('{"weight_map": {"a": "/etc/passwd"}}', /is not a plain file name/);
    check('{"weight_map": {"a": "gone.safetensors"}}', /tensor 'a' is in gone\.safetensors, which does not exist/);
    check(
      '{"weight_map": {"b": "model-00001-of-00001.safetensors"}}',
      /tensor 'b' is not in its shard .*model-00001-of-00001\.safetensors/,
    );
    check('{"metadata": {"total_size": -1}, "weight_map": {}}', /total_size must be a non-negative integer/);
    writeFileSync(idx, '{"weight_map": {"a": "model-00001-of-00001.safetensors"}}');
    const ok = openSafetensorsDir(d);
    expect(ok.readBytes('a')).toEqual(new Uint8Array([5]));
    ok.close();
  });

  it('a bad shard inside a directory names the shard', () => {
    const d = join(dir, 'badshard');
    mkdirSync(d);
    put(d, 's1.safetensors', specFile({ a: e('U8', [1], [0, 1]) }, [5]));
    put(d, 's2.safetensors', specFile({ b: e('U8', [2], [0, 1]) }, [5]));
    writeFileSync(
      join(d, 'model.safetensors.index.json'),
      '{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}',
    );
    expect(() => openSafetensorsDir(d)).toThrow(/s2\.safetensors: tensor "b": data_offsets \[0, 1\] hold 1 bytes/);
  });

  it('the writer refuses bad metadata, shapes and shard limits', () => {
    const p = join(dir, 'w.safetensors');
    expect(() => writeSafetensors(p, {}, { n: 1 as unknown as string })).toThrow(
      /w\.safetensors: metadata 'n' must be a string/,
    );
    expect(() => writeSafetensors(p, { a: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } })).toThrow(
      /tensor 'a': 8 bytes for shape \[3\] F32 \(needs 12\)/,
    );
    expect(() => writeSafetensors(p, { a: { dtype: 'Q4' as 'F32', shape: [1], data: new Uint8Array(1) } })).toThrow(
      /unknown dtype 'Q4'/,
    );
    expect(() => writeSafetensorsDir(join(dir, 'wd'), {}, { maxShardBytes: 0 })).toThrow(/positive integer/);
    expect(() => writeSafetensorsDir(join(dir, 'wd'), {}, { maxShardBytes: '5 parsecs' })).toThrow(/cannot parse/);
  });
});
