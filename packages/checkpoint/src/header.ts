import { isSafetensorsDType, SAFETENSORS_DTYPES, type SafetensorsDType, safetensorsItemSize } from './dtypes.js';
import { type RandomAccessFile, readFully } from './file-io.js';

/** Largest header the reader accepts (the limit of the reference implementation). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One validated header entry. */
export interface HeaderEntry {
  /** Tensor name. */
  readonly name: string;
  /** Stored element type. */
  readonly dtype: SafetensorsDType;
  /** Dimensions. */
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly numel: number;
  /** `[begin, end)` relative to the start of the data section. */
  readonly dataOffsets: readonly [number, number];
}

/** A validated safetensors header. */
export interface ParsedHeader {
  /** Length of the JSON header in bytes (the 8-byte prefix's value). */
  readonly headerLength: number;
  /** Absolute file offset of the data section (8 + headerLength). */
  readonly dataStart: number;
  /** Bytes in the data section. */
  readonly dataLength: number;
  /** `__metadata__`, string to string (empty when absent). */
  readonly metadata: Record<string, string>;
  /** Entries by name. */
  readonly entries: ReadonlyMap<string, HeaderEntry>;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A short printable form of a JSON value for error messages (never throws, even for deep nesting). */
const show = (v: unknown): string => {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[...]' : typeof v === 'object' ? '{...}' : '(value)';
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

/** Names of the top-level keys of a JSON object text (already known to parse), to find duplicates. */
function duplicateTopLevelKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */ && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

/**
 * Read and validate the header of a safetensors file: the 8-byte little-endian header length
 * against the file size and {@link MAX_HEADER_BYTES}, the JSON (UTF-8, an object, no duplicate
 * names), every entry (known dtype, shape of non-negative integers, `data_offsets` in bounds and
 * of exactly `numel * itemSize` bytes), `__metadata__` (string to string), and that the entries
 * neither overlap nor leave gaps: together they cover the data section exactly. Nothing from the
 * file is ever executed. Every error names the file (and the tensor where there is one).
 */
export function parseHeader(file: RandomAccessFile, path: string): ParsedHeader {
  const fail = (msg: string): never => {
    throw new Error(`safetensors ${path}: ${msg}`);
  };
  const size = file.size;
  if (!Number.isSafeInteger(size) || size < 8) {
    fail(`not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
  }
  const prefix = new Uint8Array(8);
  readFully(file, prefix, 0, path);
  const n = new DataView(prefix.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerLength = Number(n);
  if (8 + headerLength > size) {
    fail(`header length ${headerLength} exceeds the file size (${size} bytes, ${size - 8} after the length prefix)`);
  }
  if (headerLength < 2) fail(`header length ${headerLength} is too small for a JSON object`);
  const raw = new Uint8Array(headerLength);
  readFully(file, raw, 8, path);
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    fail('header is not valid UTF-8');
  }
  if (text[0] !== '{') fail(`header does not start with '{' (first byte 0x${raw[0]!.toString(16).padStart(2, '0')})`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(json)) fail('header is not a JSON object');
  const dup = duplicateTopLevelKey(text);
  if (dup !== undefined) fail(`header names tensor ${show(dup)} twice`);

  const dataStart = 8 + headerLength;
  const dataLength = size - dataStart;
  const metadata: Record<string, string> = Object.create(null);
  const entries = new Map<string, HeaderEntry>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value)) fail(`__metadata__ must be an object of strings, got ${show(value)}`);
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__[${show(k)}] must be a string, got ${show(v)}`);
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor ${show(name)}`;
    if (!isPlainObject(value)) fail(`${where}: entry must be an object, got ${show(value)}`);
    const e = value as Record<string, unknown>;
    const dtype = e.dtype;
    if (!isSafetensorsDType(dtype)) {
      fail(`${where}: unknown dtype ${show(dtype)}; known: ${SAFETENSORS_DTYPES.join(', ')}`);
    }
    const dt = dtype as SafetensorsDType;
    const shape = e.shape;
    if (!Array.isArray(shape)) fail(`${where}: shape must be an array of non-negative integers, got ${show(shape)}`);
    let numel = 1;
    for (const d of shape as unknown[]) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        fail(`${where}: shape ${show(shape)} must hold non-negative integers`);
      }
      numel *= d as number;
      if (!Number.isSafeInteger(numel)) fail(`${where}: shape ${show(shape)} has too many elements`);
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
    ) {
      fail(`${where}: data_offsets must be two non-negative integers [begin, end], got ${show(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) {
      fail(`${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes)`);
    }
    const want = numel * safetensorsItemSize(dt);
    if (end - begin !== want) {
      fail(
        `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${show(shape)} ${dt} ` +
          `needs ${want}`,
      );
    }
    entries.set(name, {
      name,
      dtype: dt,
      shape: Object.freeze([...(shape as number[])]),
      numel,
      dataOffsets: Object.freeze([begin, end]) as readonly [number, number],
    });
  }

  const sorted = [...entries.values()].sort(
    (a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1],
  );
  let expected = 0;
  let previous: HeaderEntry | undefined;
  for (const e of sorted) {
    const [begin, end] = e.dataOffsets;
    if (begin < expected) {
      fail(
        `tensors ${show(previous!.name)} [${previous!.dataOffsets.join(', ')}] and ${show(e.name)} ` +
          `[${begin}, ${end}] overlap`,
      );
    }
    if (begin > expected) fail(`bytes [${expected}, ${begin}) of the data section belong to no tensor (a gap)`);
    expected = end;
    previous = e;
  }
  if (expected !== dataLength) {
    fail(
      `bytes [${expected}, ${dataLength}) at the end of the data section belong to no tensor ` +
        '(trailing bytes or a truncated header)',
    );
  }
  return { headerLength, dataStart, dataLength, metadata, entries };
}
