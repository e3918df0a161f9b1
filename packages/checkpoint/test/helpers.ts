import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DType, Tensor } from '@omnitrain/core';
import { afterAll } from 'vitest';
import { type FileOpener, nodeFileOpener } from '../src/index.js';

/** A fresh temporary directory, removed after the test file. */
export function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `omnitrain-ckpt-${tag}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic 32-bit PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random bytes from `next`. */
export function randomBytes(n: number, next: () => number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
  return out;
}

/** A CPU tensor whose storage is random bit patterns (NaN payloads included); bools are 0/1. */
export function randomTensor(shape: number[], dtype: DType, next: () => number): Tensor {
  const t = Tensor.empty(shape, dtype, 'cpu');
  const bytes = tensorBytes(t);
  const r = randomBytes(bytes.length, next);
  if (dtype === 'bool') for (let i = 0; i < r.length; i++) r[i] = r[i]! & 1;
  bytes.set(r);
  return t;
}

/** The storage bytes of a CPU tensor (a view, not a copy). */
export function tensorBytes(t: Tensor): Uint8Array {
  const raw = t.raw();
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

/** Build a safetensors file byte by byte from the published format: u64 LE header size, JSON, data. */
export function specFile(header: string | object, data: Uint8Array | number[] = [], pad = false): Uint8Array {
  let json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  if (pad && json.length % 8) {
    const p = new Uint8Array(json.length + (8 - (json.length % 8))).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Write bytes to `dir/name` and return the path. */
export function put(dir: string, name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

/** An opener that counts reads and bytes per file and records every (position, length). */
export function countingOpener(): { opener: FileOpener; bytes: () => number; reads: [string, number, number][] } {
  const reads: [string, number, number][] = [];
  return {
    reads,
    bytes: () => reads.reduce((a, r) => a + r[2], 0),
    opener: (path) => {
      const f = nodeFileOpener(path);
      return {
        size: f.size,
        read(dst, position) {
          const n = f.read(dst, position);
          reads.push([path, position, n]);
          return n;
        },
        close: () => f.close(),
      };
    },
  };
}
