import { type DType, itemSize } from './dtype.js';
import { encodeRaw } from './host-data.js';
import { dispatch1 } from './ops/dispatch.js';
import { checkShape, numelOf } from './shape.js';
import { Tensor } from './tensor.js';

/** Where and as what to create a tensor. */
export interface TensorOptions {
  /** Element type; defaults to float32. */
  dtype?: DType;
  /** Device; defaults to `cpu`. */
  device?: string;
  /** Make it a leaf that requires grad. */
  requiresGrad?: boolean;
}

/** Nested arrays of numbers or booleans, as accepted by `tensor()`. */
export type NestedArray = number | boolean | NestedArray[];

function flattenNested(data: NestedArray, shape: number[], out: number[], depth = 0): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new Error('tensor(): ragged nested array');
    for (const d of data) flattenNested(d, shape, out, depth + 1);
  } else {
    if (shape.length !== depth) throw new Error('tensor(): ragged nested array');
    out.push(Number(data));
  }
}

function finish(t: Tensor, opts: TensorOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** Write host values into a tensor on any device. */
export function writeValues(t: Tensor, values: ArrayLike<number>): Tensor {
  if (values.length !== t.numel) {
    throw new Error(`write: ${values.length} values for a tensor of ${t.numel} elements ${JSON.stringify(t.shape)}`);
  }
  const raw = encodeRaw(values, t.dtype);
  if (t.device === 'cpu') t.raw().set(raw as never);
  else {
    const backend = t.storage.backend;
    backend.writeBytes(
      t.storage,
      t.offset * itemSize(t.dtype),
      new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength),
    );
  }
  return t;
}

/**
 * A tensor from nested arrays or a flat typed array with `shape`. Values are rounded to the
 * dtype as PyTorch rounds them.
 */
export function tensor(
  data: NestedArray | ArrayLike<number>,
  opts: TensorOptions & { shape?: readonly number[] } = {},
): Tensor {
  let shape: number[];
  let flat: ArrayLike<number>;
  if (opts.shape) {
    shape = checkShape(opts.shape, 'tensor()');
    flat = Array.isArray(data)
      ? (() => {
          const o: number[] = [];
          flattenNested(data as NestedArray, [], o);
          return o;
        })()
      : (data as ArrayLike<number>);
    if (flat.length !== numelOf(shape)) {
      throw new Error(`tensor(): ${flat.length} values do not fill shape ${JSON.stringify(shape)}`);
    }
  } else if (typeof data === 'number' || typeof data === 'boolean') {
    shape = [];
    flat = [Number(data)];
  } else if (Array.isArray(data)) {
    shape = [];
    const o: number[] = [];
    flattenNested(data as NestedArray, shape, o);
    flat = o;
  } else {
    shape = [(data as ArrayLike<number>).length];
    flat = data as ArrayLike<number>;
  }
  const t = Tensor.empty(shape, opts.dtype ?? 'float32', opts.device ?? 'cpu');
  return finish(writeValues(t, flat), opts);
}

/** Uninitialised tensor (zero-filled by every backend's allocator). */
export function empty(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return finish(Tensor.empty(checkShape(shape, 'empty()'), opts.dtype ?? 'float32', opts.device ?? 'cpu'), opts);
}

/** Tensor filled with `value`. */
export function full(shape: readonly number[], value: number, opts: TensorOptions = {}): Tensor {
  const t = Tensor.empty(checkShape(shape, 'full()'), opts.dtype ?? 'float32', opts.device ?? 'cpu');
  if (t.device !== 'meta' && t.numel) dispatch1('fill_', [t], { value });
  return finish(t, opts);
}

/** Zeros. */
export function zeros(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 0, opts);
}

/** Ones. */
export function ones(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/** `[start, end)` with `step`; int32 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  const n = Math.max(0, Math.ceil((end - start) / step));
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = start + i * step;
  return tensor(values, { dtype: 'int32', ...opts, shape: [n] });
}

/** Zeros shaped like `t` (same dtype and device unless overridden). */
export function zerosLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device, ...opts });
}

/** Ones shaped like `t`. */
export function onesLike(t: Tensor, opts: TensorOptions = {}): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device, ...opts });
}

/** `value` shaped like `t`. */
export function fullLike(t: Tensor, value: number, opts: TensorOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...opts });
}
