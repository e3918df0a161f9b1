import { type DType, itemSize, normalizeDevice, Tensor } from '@omnitrain/core';
import { coreDTypeOf, decodeNonNative, isNativeDType, type SafetensorsDType, safetensorsItemSize } from './dtypes.js';
import { type FileOpener, nodeFileOpener, type RandomAccessFile, readFully } from './file-io.js';
import { type HeaderEntry, parseHeader } from './header.js';

/** What the reader knows about one tensor. */
export interface TensorInfo {
  /** Tensor name. */
  readonly name: string;
  /** Stored safetensors dtype. */
  readonly dtype: SafetensorsDType;
  /** The core dtype `readTensor` gives when no dtype is asked for. */
  readonly coreDtype: DType;
  /** Dimensions. */
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly numel: number;
  /** The file holding it. */
  readonly file: string;
  /** Absolute `[start, end)` byte range of its data in `file`. */
  readonly byteRange: readonly [number, number];
}

/** Where and as what a tensor is read. */
export interface ReadOptions {
  /** Device of the result (default `cpu`; `meta` reads nothing). */
  device?: string;
  /** Convert to this dtype (default: the stored dtype, see {@link TensorInfo.coreDtype}). */
  dtype?: DType;
}

/** Options of {@link openSafetensors} and {@link openSafetensorsDir}. */
export interface OpenOptions {
  /** How files are opened and read (default: Node file descriptors and `fs.readSync`). */
  opener?: FileOpener;
}

/**
 * Random access to the tensors of one safetensors file or of a sharded directory. Reads touch
 * only the bytes asked for; tensors come back on the requested device and the caller owns
 * (disposes) them. `close()` releases the file descriptors.
 */
export interface SafetensorsSource {
  /** The file or directory this reads. */
  readonly path: string;
  /** `__metadata__` of the file (of the first shard for a directory). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor names, sorted. */
  keys(): string[];
  /** True when a tensor of that name exists. */
  has(name: string): boolean;
  /** Dtype, shape, file and byte range of a tensor; an error naming it when absent. */
  info(name: string): TensorInfo;
  /** Raw stored bytes `[start, end)` of a tensor's data (default: all of it). */
  readBytes(name: string, start?: number, end?: number): Uint8Array;
  /** The whole tensor. */
  readTensor(name: string, opts?: ReadOptions): Tensor;
  /** Rows `[start, end)` of dimension 0 (what one FSDP rank holds); reads only those rows' bytes. */
  readRows(name: string, start: number, end: number, opts?: ReadOptions): Tensor;
  /** Elements `[start, end)` of the flattened tensor as a 1-D tensor; reads only those bytes. */
  readElements(name: string, start: number, end: number, opts?: ReadOptions): Tensor;
  /** Every tensor (or those in `names`), as a name -> tensor record. */
  readAll(opts?: ReadOptions & { names?: readonly string[] }): Record<string, Tensor>;
  /** Close the underlying files; later reads are an error. */
  close(): void;
}

/** Shared implementation of the read methods over `locate(name)` -> file + entry. */
export abstract class SourceBase implements SafetensorsSource {
  abstract readonly path: string;
  abstract readonly metadata: Readonly<Record<string, string>>;
  abstract keys(): string[];
  abstract has(name: string): boolean;
  abstract info(name: string): TensorInfo;
  abstract close(): void;
  /** Read `dst.length` bytes at absolute `position` of `file`. */
  protected abstract readAt(file: string, dst: Uint8Array, position: number): void;

  readBytes(name: string, start = 0, end?: number): Uint8Array {
    const info = this.info(name);
    const length = info.byteRange[1] - info.byteRange[0];
    const stop = end ?? length;
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(stop) && 0 <= start && start <= stop && stop <= length)) {
      throw new Error(
        `safetensors ${info.file}: tensor '${name}': byte range [${start}, ${stop}) outside its ${length} bytes`,
      );
    }
    const out = new Uint8Array(stop - start);
    this.readAt(info.file, out, info.byteRange[0] + start);
    return out;
  }

  /**
   * Raw stored bytes `[start, start + dst.length)` of a tensor's data, read straight into `dst`
   * (e.g. a CPU tensor's storage): no allocation, no copy.
   */
  readBytesInto(name: string, start: number, dst: Uint8Array): void {
    const info = this.info(name);
    const length = info.byteRange[1] - info.byteRange[0];
    const stop = start + dst.length;
    if (!(Number.isSafeInteger(start) && 0 <= start && stop <= length)) {
      throw new Error(
        `safetensors ${info.file}: tensor '${name}': byte range [${start}, ${stop}) outside its ${length} bytes`,
      );
    }
    if (dst.length) this.readAt(info.file, dst, info.byteRange[0] + start);
  }

  readTensor(name: string, opts: ReadOptions = {}): Tensor {
    const info = this.info(name);
    return this.readPart(info, 0, info.numel, [...info.shape], opts);
  }

  readRows(name: string, start: number, end: number, opts: ReadOptions = {}): Tensor {
    const info = this.info(name);
    const rows = info.shape[0];
    if (rows === undefined) throw new Error(`safetensors ${info.file}: tensor '${name}': readRows on a 0-d tensor`);
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= rows)) {
      throw new Error(
        `safetensors ${info.file}: tensor '${name}': rows [${start}, ${end}) outside dimension 0 of size ${rows} ` +
          `(shape ${JSON.stringify(info.shape)})`,
      );
    }
    const inner = info.shape.slice(1).reduce((a, b) => a * b, 1);
    return this.readPart(info, start * inner, end * inner, [end - start, ...info.shape.slice(1)], opts);
  }

  readElements(name: string, start: number, end: number, opts: ReadOptions = {}): Tensor {
    const info = this.info(name);
    if (
      !(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= info.numel)
    ) {
      throw new Error(
        `safetensors ${info.file}: tensor '${name}': elements [${start}, ${end}) outside its ${info.numel} elements`,
      );
    }
    return this.readPart(info, start, end, [end - start], opts);
  }

  readAll(opts: ReadOptions & { names?: readonly string[] } = {}): Record<string, Tensor> {
    const out: Record<string, Tensor> = Object.create(null);
    try {
      for (const name of opts.names ?? this.keys()) out[name] = this.readTensor(name, opts);
    } catch (e) {
      for (const t of Object.values(out)) t.dispose();
      throw e;
    }
    return out;
  }

  /** Read elements `[first, last)` of `info` into a tensor of `shape` on the requested device and dtype. */
  private readPart(info: TensorInfo, first: number, last: number, shape: number[], opts: ReadOptions): Tensor {
    const device = normalizeDevice(opts.device ?? 'cpu');
    const target = opts.dtype ?? info.coreDtype;
    if (device === 'meta') return Tensor.empty(shape, target, 'meta');
    const size = safetensorsItemSize(info.dtype);
    const position = info.byteRange[0] + first * size;
    const bytes = (last - first) * size;
    let t: Tensor;
    if (isNativeDType(info.dtype)) {
      if (device !== 'cpu' && target === info.coreDtype) {
        // Straight to the device: one host buffer, one upload.
        const host = new Uint8Array(bytes);
        this.readAt(info.file, host, position);
        t = Tensor.empty(shape, target, device);
        if (bytes) t.storage.backend.writeBytes(t.storage, t.offset * itemSize(target), host);
        return t;
      }
      t = Tensor.empty(shape, info.coreDtype, 'cpu');
      try {
        this.readAt(info.file, new Uint8Array(t.storage.handle as ArrayBuffer, 0, bytes), position);
      } catch (e) {
        t.dispose();
        throw e;
      }
    } else {
      const host = new Uint8Array(bytes);
      this.readAt(info.file, host, position);
      const values = decodeNonNative(host, info.dtype, `safetensors ${info.file}: tensor '${info.name}'`, first);
      t = Tensor.empty(shape, info.coreDtype, 'cpu');
      (t.raw() as Int32Array | Float32Array).set(values);
    }
    if (target !== t.dtype) {
      const c = t.to(target);
      t.dispose();
      t = c;
    }
    if (device !== 'cpu') {
      const d = t.to(device);
      t.dispose();
      t = d;
    }
    return t;
  }
}

/** One open safetensors file. */
export class SafetensorsFile extends SourceBase {
  readonly metadata: Readonly<Record<string, string>>;
  private readonly entries: ReadonlyMap<string, HeaderEntry>;
  private readonly names: string[];
  private readonly dataStart: number;
  private file: RandomAccessFile | null;

  /** Open and validate `path` (see {@link openSafetensors}). */
  constructor(
    readonly path: string,
    opts: OpenOptions = {},
  ) {
    super();
    const file = (opts.opener ?? nodeFileOpener)(path);
    try {
      const h = parseHeader(file, path);
      this.metadata = Object.freeze(h.metadata);
      this.entries = h.entries;
      this.dataStart = h.dataStart;
      this.names = [...h.entries.keys()].sort();
    } catch (e) {
      file.close();
      throw e;
    }
    this.file = file;
  }

  keys(): string[] {
    return [...this.names];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entries.get(name);
    if (!e) {
      const some = this.names.slice(0, 8).join(', ');
      throw new Error(
        `safetensors ${this.path}: no tensor '${name}' (${this.names.length} tensors: ${some}` +
          `${this.names.length > 8 ? ', ...' : ''})`,
      );
    }
    return {
      name,
      dtype: e.dtype,
      coreDtype: coreDTypeOf(e.dtype),
      shape: e.shape,
      numel: e.numel,
      file: this.path,
      byteRange: [this.dataStart + e.dataOffsets[0], this.dataStart + e.dataOffsets[1]],
    };
  }

  close(): void {
    this.file?.close();
    this.file = null;
  }

  /** @internal Read `dst.length` bytes at absolute `position`. */
  readRange(dst: Uint8Array, position: number): void {
    if (!this.file) throw new Error(`safetensors ${this.path}: read after close()`);
    if (dst.length) readFully(this.file, dst, position, this.path);
  }

  protected readAt(_file: string, dst: Uint8Array, position: number): void {
    this.readRange(dst, position);
  }
}

/**
 * Open one safetensors file for random access. The header is read and fully validated first
 * (see `parseHeader`); no tensor data is read until asked for. Close it when done.
 */
export function openSafetensors(path: string, opts: OpenOptions = {}): SafetensorsFile {
  return new SafetensorsFile(path, opts);
}
