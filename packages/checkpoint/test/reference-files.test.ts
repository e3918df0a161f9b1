// Files we did not write: byte sequences built by hand from the published format (8-byte
// little-endian header size N, N bytes of JSON, then the data section) and the exact outputs
// the reference implementation (huggingface/safetensors) asserts in its own test suite.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSafetensors, openSafetensorsDir, writeSafetensors } from '../src/index.js';
import { put, specFile, tempDir } from './helpers.js';

const f32 = (...v: number[]) => [...new Uint8Array(new Float32Array(v).buffer)];

/** The reference Rust writer's output for {"attn.0": F32 [1,2,3] = 0..5} (its `test_serialization`). */
const RUST_VECTOR = [
  64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70,
  51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111,
  102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0,
  64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
];

/** The reference Python binding's output for {"test": int32 zeros [2,2]}: header padded with 4 spaces. */
const PY_VECTOR = [
  ...new TextEncoder().encode(
    '@\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}    ',
  ),
  ...new Uint8Array(16),
];

/** An older Python binding's file with metadata (header 102 bytes, padded with 7 spaces). */
const PY_META_VECTOR = [
  ...new TextEncoder().encode(
    'f\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{"framework":"pt"},"test1":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}       ',
  ),
  ...new Uint8Array(16),
];

describe('files written by other writers', () => {
  const dir = tempDir('ref');

  it("reads the reference implementation's test vectors", () => {
    const a = openSafetensors(put(dir, 'rust.safetensors', new Uint8Array(RUST_VECTOR)));
    expect(a.keys()).toEqual(['attn.0']);
    const t = a.readTensor('attn.0');
    expect([t.dtype, t.shape, t.toArray()]).toEqual(['float32', [1, 2, 3], [0, 1, 2, 3, 4, 5]]);
    t.dispose();
    a.close();
    const b = openSafetensors(put(dir, 'py.safetensors', new Uint8Array(PY_VECTOR)));
    const u = b.readTensor('test');
    expect([u.dtype, u.shape, u.toArray()]).toEqual(['int32', [2, 2], [0, 0, 0, 0]]);
    u.dispose();
    b.close();
    const c = openSafetensors(put(dir, 'pymeta.safetensors', new Uint8Array(PY_META_VECTOR)));
    expect(c.metadata).toEqual({ framework: 'pt' });
    expect(c.info('test1').byteRange).toEqual([8 + 102, 8 + 102 + 16]);
    c.close();
  });

  it('writes byte for byte what the reference implementation writes', () => {
    const p1 = join(dir, 'ours-rust.safetensors');
    writeSafetensors(p1, { 'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: new Uint8Array(f32(0, 1, 2, 3, 4, 5)) } });
    expect([...readFileSync(p1)]).toEqual(RUST_VECTOR);
    const p2 = join(dir, 'ours-py.safetensors');
    writeSafetensors(p2, { test: { dtype: 'I32', shape: [2, 2], data: new Uint8Array(16) } });
    expect([...readFileSync(p2)]).toEqual(PY_VECTOR);
  });

  it('reads a hand-built file: unpadded header, entries out of data order, every dtype, metadata, unicode names', () => {
    const data: number[] = [];
    const header: Record<string, unknown> = { __metadata__: { format: 'pt', ключ: 'значение' } };
    const add = (name: string, dtype: string, shape: number[], bytes: number[]) => {
      header[name] = { dtype, shape, data_offsets: [data.length, data.length + bytes.length] };
      data.push(...bytes);
    };
    add('z.bool', 'BOOL', [3], [1, 0, 1]);
    add('u8', 'U8', [2], [255, 7]);
    add('a.f64', 'F64', [1], [...new Uint8Array(new Float64Array([Math.PI]).buffer)]);
    add('w.f16', 'F16', [2], [0x00, 0x3c, 0x00, 0xc0]); // 1.0, -2.0
    add('w.bf16', 'BF16', [2], [0x80, 0x3f, 0x49, 0x40]); // 1.0, 3.140625
    add('i32', 'I32', [2], [0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0]);
    add('i64', 'I64', [1], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    add('0-d', 'F32', [], f32(42));
    add('empty', 'F32', [0, 3], []);
    add('名前.weight', 'F32', [1], f32(-1.5));
    const p = put(dir, 'hand.safetensors', specFile(header, data));
    const f = openSafetensorsDir(p);
    expect(f.metadata).toEqual({ format: 'pt', ключ: 'значение' });
    const read = (k: string) => {
      const t = f.readTensor(k);
      const v = [t.dtype, t.shape, t.toArray()];
      t.dispose();
      return v;
    };
    expect(read('z.bool')).toEqual(['bool', [3], [1, 0, 1]]);
    expect(read('u8')).toEqual(['uint8', [2], [255, 7]]);
    expect(read('a.f64')).toEqual(['float64', [1], [Math.PI]]);
    expect(read('w.f16')).toEqual(['float16', [2], [1, -2]]);
    expect(read('w.bf16')).toEqual(['bfloat16', [2], [1, 3.140625]]);
    expect(read('i32')).toEqual(['int32', [2], [-1, 2]]);
    expect(read('i64')).toEqual(['int32', [1], [-2]]);
    expect(read('0-d')).toEqual(['float32', [], [42]]);
    expect(read('empty')).toEqual(['float32', [0, 3], []]);
    expect(read('名前.weight')).toEqual(['float32', [1], [-1.5]]);
    f.close();
  });

  it('reads a hand-built sharded directory with an index written by hand', () => {
    const out = join(dir, 'handdir');
    mkdirSync(out);
    put(out, 'a.safetensors', specFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1, 2), true));
    put(out, 'b.safetensors', specFile({ y: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(3)));
    put(
      out,
      'model.safetensors.index.json',
      new TextEncoder().encode(
        JSON.stringify({ metadata: { total_size: 12 }, weight_map: { x: 'a.safetensors', y: 'b.safetensors' } }),
      ),
    );
    const src = openSafetensorsDir(out);
    expect(src.keys()).toEqual(['x', 'y']);
    const y = src.readTensor('y');
    expect(y.toArray()).toEqual([3]);
    expect(src.info('x').file).toBe(join(out, 'a.safetensors'));
    y.dispose();
    src.close();
  });
});
