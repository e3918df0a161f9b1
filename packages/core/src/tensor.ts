import { runBackward } from './autograd/engine.js';
import type { GradHook, GradNode } from './autograd/node.js';
import { record } from './autograd/node.js';
import type { Backend } from './backend.js';
import type { Device } from './device.js';
import { normalizeDevice } from './device.js';
import { DTYPES, type DType, isFloating, itemSize, type RawArray, rawView } from './dtype.js';
import { bytesAsRaw, decodeRaw, type HostArray } from './host-data.js';
import { trackTensor, untrackTensor } from './memory.js';
import { cast } from './ops/elementwise.js';
import { getRegistry } from './registry.js';
import { inferShape, numelOf } from './shape.js';
import type { Storage } from './storage.js';
import { toDevice } from './transfer.js';

let nextId = 1;

/**
 * An n-dimensional array on a device. Always contiguous (row-major); `reshape`, `view`,
 * `flatten` and `slice0` share storage, every op makes a new tensor. Tensors are disposed
 * explicitly (`dispose`, `using`, or `tidy`); the garbage collector is never relied on.
 */
export class Tensor {
  /** Marker used to find tensors inside returned values. */
  readonly isTensor = true;
  /** Unique id, for debugging and error messages. */
  readonly id = nextId++;
  /** Whether gradients are accumulated into `.grad` (leaves) or flow through (non-leaves). */
  requiresGrad = false;
  /** Accumulated gradient of a leaf tensor. */
  grad: Tensor | null = null;
  /** The tape node that produced this tensor (null for leaves). */
  gradFn: GradNode | null = null;
  /** Which output of `gradFn` this tensor is. */
  outputIndex = 0;
  /** Gradient hooks of a leaf tensor. */
  readonly leafHooks: GradHook[] = [];
  /** Hooks run after a leaf's `.grad` was accumulated (FSDP reduce-scatter starts here). */
  readonly postAccumulateHooks: ((t: Tensor) => void)[] = [];
  /** Optional name (parameters get their fully qualified name). */
  name?: string;
  private disposed = false;
  private readonly owner: Backend;

  constructor(
    /** The memory this tensor views; retained by the caller for this tensor. */
    readonly storage: Storage,
    /** Dimensions. */
    readonly shape: readonly number[],
    /** Element type. */
    readonly dtype: DType,
    /** Device, e.g. `cpu`, `cuda:0`, `meta`. */
    readonly device: Device,
    /** Offset of the first element in the storage, in elements. */
    readonly offset = 0,
  ) {
    if ((offset + numelOf(shape)) * itemSize(dtype) > storage.byteLength) {
      throw new Error(`tensor ${JSON.stringify(shape)} ${dtype} at offset ${offset} exceeds its storage`);
    }
    this.owner = storage.backend;
    this.owner.countTensor(1);
    trackTensor(this);
  }

  /** Allocate a tensor, zero-filled on CPU (see {@link Tensor.uninitialized} for outputs written whole). */
  static empty(shape: readonly number[], dtype: DType = 'float32', device: string = 'cpu'): Tensor {
    return Tensor.allocate(shape, dtype, device, true);
  }

  /**
   * A tensor whose contents are unspecified (like `torch.empty`): on CPU a reused cached buffer keeps the bytes of
   * a freed tensor. Only for kernels that write every element of their output; everything else uses `empty`.
   */
  static uninitialized(shape: readonly number[], dtype: DType = 'float32', device: string = 'cpu'): Tensor {
    return Tensor.allocate(shape, dtype, device, false);
  }

  private static allocate(shape: readonly number[], dtype: DType, device: string, zeroFill: boolean): Tensor {
    const dev = normalizeDevice(device);
    const backend = getRegistry().backend(dev);
    const bytes = numelOf(shape) * itemSize(dtype);
    const index = dev.startsWith('cuda:') ? Number(dev.slice(5)) : 0;
    return new Tensor(backend.allocate(bytes, dtype, index, zeroFill), [...shape], dtype, dev);
  }

  /** Number of elements. */
  get numel(): number {
    return numelOf(this.shape);
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Size of dimension `dim` (negative counts from the end). */
  size(dim: number): number {
    const d = dim < 0 ? dim + this.shape.length : dim;
    const s = this.shape[d];
    if (s === undefined) throw new Error(`size(${dim}): tensor has rank ${this.shape.length}`);
    return s;
  }

  /** Bytes of this tensor's elements (not of the whole storage). */
  get byteLength(): number {
    return this.numel * itemSize(this.dtype);
  }

  /** True for float dtypes. */
  get isFloatingPoint(): boolean {
    return isFloating(this.dtype);
  }

  /** True for tensors not produced by a recorded op. */
  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  /** True once disposed. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Set `requiresGrad` (leaves only); returns this. */
  requiresGrad_(value = true): this {
    if (value && !this.isFloatingPoint) throw new Error(`only float tensors can require grad, got ${this.dtype}`);
    if (!this.isLeaf) throw new Error('requiresGrad_ on a non-leaf tensor; use detach() first');
    this.requiresGrad = value;
    return this;
  }

  /** @internal Attach this tensor to a tape node. */
  setGradFn(node: GradNode, index: number): void {
    this.gradFn = node;
    this.outputIndex = index;
    this.requiresGrad = true;
  }

  /**
   * The raw storage array (16-bit patterns for halves). CPU only; shares memory, zero-copy.
   * Valid only until this tensor (the last one viewing its storage) is disposed, like PyTorch's
   * `data_ptr()`: the CPU backend caches freed buffers and hands them to new tensors, so a view
   * kept past `dispose()` would read or scribble over another tensor's data. Copy
   * (`toTypedArray()`, `raw().slice()`) what must outlive the tensor.
   */
  raw(): RawArray {
    this.assertLive('raw');
    if (this.device !== 'cpu') throw new Error(`raw(): tensor is on '${this.device}'; copy it to 'cpu' first`);
    if (!this.storage.isAllocated) this.storage.assertAllocated(`raw() of ${this.describe()}`);
    return rawView(this.storage.handle as ArrayBuffer, this.dtype, this.offset, this.numel);
  }

  /** A host copy of the values (halves widened to float32). Synchronises the device. */
  toTypedArray(): HostArray {
    this.assertLive('toTypedArray');
    if (!this.storage.isAllocated) this.storage.assertAllocated(`toTypedArray() of ${this.describe()}`);
    if (this.device === 'cpu') return decodeRaw(this.raw().slice(), this.dtype);
    const size = itemSize(this.dtype);
    const bytes = this.owner.readBytes(this.storage, this.offset * size, this.numel * size);
    return decodeRaw(bytesAsRaw(bytes, this.dtype), this.dtype);
  }

  /** Values as a flat array of numbers. */
  toArray(): number[] {
    return Array.from(this.toTypedArray());
  }

  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new Error(`item(): tensor has ${this.numel} elements, expected 1`);
    return this.toTypedArray()[0]!;
  }

  /** A tensor sharing this storage with another shape (one -1 allowed). Differentiable. */
  reshape(...shape: number[] | [readonly number[]]): Tensor {
    const target = inferShape(
      (Array.isArray(shape[0]) ? shape[0] : shape) as number[],
      this.numel,
      `reshape of ${JSON.stringify(this.shape)}`,
    );
    const out = this.viewAs(target, this.offset);
    const inShape = this.shape;
    record('reshape', [this], [out], ([g]) => [g ? g.reshape(inShape) : null]);
    return out;
  }

  /** Alias of `reshape` (all tensors are contiguous). */
  view(...shape: number[]): Tensor {
    return this.reshape(...shape);
  }

  /** Merge dimensions `start..end` into one. */
  flatten(start = 0, end = -1): Tensor {
    const n = this.ndim;
    if (n === 0) return this.reshape(1);
    const s = start < 0 ? start + n : start;
    const e = end < 0 ? end + n : end;
    const merged = this.shape.slice(s, e + 1).reduce((a, b) => a * b, 1);
    return this.reshape([...this.shape.slice(0, s), merged, ...this.shape.slice(e + 1)]);
  }

  /** Rows `start..end` of dimension 0, sharing storage. Differentiable. */
  slice0(start: number, end: number = this.shape[0] ?? 0): Tensor {
    const rows = this.shape[0];
    if (rows === undefined) throw new Error('slice0 on a 0-d tensor');
    if (!(0 <= start && start <= end && end <= rows)) {
      throw new Error(`slice0(${start}, ${end}) out of range for dimension 0 of size ${rows}`);
    }
    const inner = numelOf(this.shape.slice(1));
    const out = this.viewAs([end - start, ...this.shape.slice(1)], this.offset + start * inner);
    const fullShape = this.shape;
    record('slice0', [this], [out], ([g]) => [g ? padDim0(g, start, fullShape) : null]);
    return out;
  }

  /**
   * This tensor on another device, or cast to another dtype (a new tensor either way unless
   * nothing changes). Differentiable.
   */
  to(target: Device | DType | string): Tensor {
    if ((DTYPES as readonly string[]).includes(target))
      return target === this.dtype ? this : cast(this, target as DType);
    return toDevice(this, target);
  }

  /** A tensor sharing storage but cut from the tape. */
  detach(): Tensor {
    return this.viewAs(this.shape, this.offset);
  }

  /**
   * @internal Make this handle view `src`'s storage, shape, dtype and device (PyTorch's
   * `p.data = t`): identity, `requiresGrad`, hooks and name stay. Used by `Parameter.setData`
   * and strategies that swap a parameter's memory (FSDP).
   */
  adoptStorageOf(src: Tensor, where = 'adoptStorageOf'): void {
    this.assertLive(where);
    if (src.isDisposed) throw new Error(`${where}: new data tensor #${src.id} was disposed`);
    if (src === this) return;
    const self = this as unknown as {
      storage: Storage;
      shape: readonly number[];
      dtype: DType;
      device: Device;
      offset: number;
      owner: Backend;
    };
    const oldStorage = this.storage;
    const oldOwner = this.owner;
    self.storage = src.storage.retain();
    self.shape = [...src.shape];
    self.dtype = src.dtype;
    self.device = src.device;
    self.offset = src.offset;
    self.owner = src.storage.backend;
    if (oldOwner !== self.owner) {
      oldOwner.countTensor(-1);
      self.owner.countTensor(1);
    }
    oldStorage.release();
  }

  /** @internal A handle the autograd tape owns: shares storage, invisible to `tidy`. */
  aliasForAutograd(): Tensor {
    const t = this.viewAs(this.shape, this.offset);
    untrackTensor(t);
    return t;
  }

  /** Compute gradients of this tensor (a scalar unless `grad` is given) into the leaves. */
  backward(grad?: Tensor): void {
    runBackward([this], grad ? [grad] : undefined);
  }

  /** Register a hook on this tensor's gradient; it may return a replacement. */
  registerHook(hook: GradHook): () => void {
    const list = this.gradFn
      ? (this.gradFn.outputHooks.get(this.outputIndex) ??
        (this.gradFn.outputHooks.set(this.outputIndex, []).get(this.outputIndex) as GradHook[]))
      : this.leafHooks;
    if (!this.requiresGrad) throw new Error('registerHook on a tensor that does not require grad');
    list.push(hook);
    return () => {
      const i = list.indexOf(hook);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Register a hook run after this leaf's `.grad` has been accumulated. */
  registerPostAccumulateGradHook(hook: (t: Tensor) => void): () => void {
    if (!this.isLeaf) throw new Error('post-accumulate-grad hooks are for leaf tensors');
    this.postAccumulateHooks.push(hook);
    return () => {
      const i = this.postAccumulateHooks.indexOf(hook);
      if (i >= 0) this.postAccumulateHooks.splice(i, 1);
    };
  }

  /** Release this handle; the storage is freed when no other tensor views it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    untrackTensor(this);
    this.owner.countTensor(-1);
    this.storage.release();
  }

  /** `using t = ...` disposes at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** `tensor #id 'name' [shape] dtype` for error messages. */
  private describe(): string {
    return `tensor #${this.id}${this.name ? ` '${this.name}'` : ''} ${JSON.stringify(this.shape)} ${this.dtype}`;
  }

  /** Short description: shape, dtype, device. */
  toString(): string {
    return `Tensor(${JSON.stringify(this.shape)}, ${this.dtype}, ${this.device})`;
  }

  private viewAs(shape: readonly number[], offset: number): Tensor {
    this.assertLive('view');
    return new Tensor(this.storage.retain(), shape, this.dtype, this.device, offset);
  }

  private assertLive(what: string): void {
    if (this.disposed) throw new Error(`${what}: tensor #${this.id} ${JSON.stringify(this.shape)} was disposed`);
  }
}

/** Zero tensor of `fullShape` with `g` written at rows `start..`. Used by slice0's gradient. */
function padDim0(g: Tensor, start: number, fullShape: readonly number[]): Tensor {
  const out = Tensor.empty(fullShape, g.dtype, g.device);
  const inner = numelOf(fullShape.slice(1));
  const size = itemSize(g.dtype);
  const backend = getRegistry().backend(g.device);
  // Device-agnostic copy through the backend: zeros are already there from allocate.
  const bytes = backend.readBytes(g.storage, g.offset * size, g.numel * size);
  backend.writeBytes(out.storage, start * inner * size, bytes);
  return out;
}
