// Minimal safetensors reader for test fixtures (the validated, production reader lives in
// @omnitrain/checkpoint). Fixture files are ours and small, so the whole file is read.
import { readFileSync } from 'node:fs';
import { bytesAsRaw, decodeRaw } from '../../src/host-data.js';
import { type DType, Tensor, tensor } from '../../src/index.js';

const DTYPES: Record<string, DType> = {
  F32: 'float32',
  BF16: 'bfloat16',
  F16: 'float16',
  F64: 'float64',
  I32: 'int32',
  U8: 'uint8',
  BOOL: 'bool',
};

export interface SafetensorsFile {
  tensors: Map<string, { dtype: DType; shape: number[]; bytes: Uint8Array }>;
  metadata: Record<string, string>;
}

export function readSafetensors(path: string): SafetensorsFile {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, any>;
  const data = buf.subarray(8 + n);
  const tensors = new Map<string, { dtype: DType; shape: number[]; bytes: Uint8Array }>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dtype = DTYPES[info.dtype];
    if (!dtype) throw new Error(`${path}: ${name} has unsupported dtype ${info.dtype}`);
    const [a, b] = info.data_offsets as [number, number];
    tensors.set(name, { dtype, shape: info.shape, bytes: new Uint8Array(data.subarray(a, b)) });
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

/** Make a CPU tensor (bit-exact, halves included) from stored bytes. */
export function tensorFromBytes(entry: { dtype: DType; shape: number[]; bytes: Uint8Array }): Tensor {
  const t = Tensor.empty(entry.shape, entry.dtype, 'cpu');
  t.raw().set(bytesAsRaw(entry.bytes, entry.dtype) as never);
  return t;
}

export { decodeRaw, tensor };
