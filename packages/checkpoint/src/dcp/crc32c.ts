/**
 * Build a CRC32C (Castagnoli, the checksum of iSCSI, ext4 and ByteCheckpoint) function using
 * slicing-by-8 tables. Self-contained (no imports, no outer references) so the background save
 * worker can receive its source text.
 */
export function makeCrc32c(): (data: Uint8Array, seed?: number) => number {
  const T = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    T[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = T[n]!;
    for (let s = 1; s < 8; s++) {
      c = T[c & 0xff]! ^ (c >>> 8);
      T[s * 256 + n] = c >>> 0;
    }
  }
  return (data: Uint8Array, seed = 0): number => {
    let crc = ~seed >>> 0;
    let i = 0;
    const n = data.length;
    const end8 = n - (n % 8);
    for (; i < end8; i += 8) {
      const a = (crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
      crc =
        T[1792 + (a & 0xff)]! ^
        T[1536 + ((a >>> 8) & 0xff)]! ^
        T[1280 + ((a >>> 16) & 0xff)]! ^
        T[1024 + (a >>> 24)]! ^
        T[768 + data[i + 4]!]! ^
        T[512 + data[i + 5]!]! ^
        T[256 + data[i + 6]!]! ^
        T[data[i + 7]!]!;
    }
    for (; i < n; i++) crc = T[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
    return ~crc >>> 0;
  };
}

import { crc32 } from 'node:zlib';

let cached: ((data: Uint8Array, seed?: number) => number) | null = null;

/** CRC32C of `data` (continuing from `seed`, the CRC of the bytes before). `crc32c('123456789') = 0xe3069283`. */
export function crc32c(data: Uint8Array, seed = 0): number {
  cached ??= makeCrc32c();
  return cached(data, seed);
}

/** The block checksum function of a checksum kind (`crc32`: zlib's native CRC-32). */
export function checksumFunction(kind: string): (data: Uint8Array, seed?: number) => number {
  if (kind === 'crc32') return (d, seed = 0) => crc32(d, seed);
  if (kind === 'crc32c') return crc32c;
  throw new Error(`unknown checksum '${kind}' (known: crc32, crc32c)`);
}
