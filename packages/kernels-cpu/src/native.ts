// Lazy loader of the native addon: never loaded at import, only on first use, inside try/catch.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RawArray } from '@omnitrain/core';

/** Float arrays the addon reads and writes in place (views of tensors' own storage). */
type F32 = Float32Array;
type I32 = Int32Array;

/** The functions exported by `omnitrain_kernels_cpu.node` (all float32, in place into given outputs). */
export interface NativeAddon {
  info(): {
    isa: string;
    threads: number;
    blas: string;
    gemm: string;
    /** bfloat16 GEMM kernel this CPU can run: 'avx512-bf16' (vdpbf16ps) or 'none' (bf16 matmul widens to float32). */
    gemmBf16: string;
    /** GEMMs (one per batch entry) run so far by the vdpbf16ps kernel and by its scalar emulation. */
    gemmBf16Runs: { hardware: number; emulated: number };
  };
  setThreads(n: number): void;
  /**
   * GEMM implementation: 0 = OpenBLAS panels on the pool (OMNITRAIN_GEMM=openblas), 1 = the packed SIMD GEMM
   * (OMNITRAIN_GEMM=packed), 2 = automatic (default): packed for K <= 1536, OpenBLAS panels for deeper K.
   */
  setGemmImpl(impl: 0 | 1 | 2): void;
  /**
   * The packed GEMM's kernel: 0 = the best this CPU has (default), 1 = AVX2 6x16, 2 = AVX-512 6x32, 3 = the AVX-512
   * kernel's 6x32 tile on 16 emulated C++ lanes (runs on any AVX2 CPU; for tests). Returns false, changing nothing,
   * when this CPU cannot run the kernel asked for.
   */
  setPackedGemmIsa(level: 0 | 1 | 2 | 3): boolean;
  gemm(
    a: F32,
    b: F32,
    c: F32,
    m: number,
    n: number,
    k: number,
    ta: boolean,
    tb: boolean,
    offA: Float64Array,
    offB: Float64Array,
    beta?: number,
  ): void;
  /**
   * C[p] = op(A + offA[p]) op(B + offB[p]) in float32 (overwritten) from bfloat16 bits, for each batch entry p.
   * mode 0: the AVX-512 BF16 kernel; 1: its scalar emulation (same packing). Returns false, writing nothing,
   * when the mode has no kernel on this CPU (0 without avx512bf16).
   */
  gemmBf16(
    a: Uint16Array,
    b: Uint16Array,
    c: F32,
    m: number,
    n: number,
    k: number,
    ta: boolean,
    tb: boolean,
    offA: Float64Array,
    offB: Float64Array,
    mode: 0 | 1,
  ): boolean;
  rmsNormFwd(x: F32, w: F32, y: F32, rstd: F32, rows: number, d: number, eps: number): void;
  rmsNormBwd(gy: F32, x: F32, w: F32, rstd: F32, gx: F32, gw: F32, rows: number, d: number): void;
  layerNormFwd(
    x: F32,
    w: F32 | null,
    b: F32 | null,
    y: F32,
    mean: F32,
    rstd: F32,
    rows: number,
    d: number,
    eps: number,
  ): void;
  layerNormBwd(
    gy: F32,
    x: F32,
    mean: F32,
    rstd: F32,
    w: F32 | null,
    gx: F32,
    gw: F32 | null,
    gb: F32 | null,
    rows: number,
    d: number,
  ): void;
  swigluFwd(g: F32, u: F32, y: F32, n: number): void;
  swigluBwd(dy: F32, g: F32, u: F32, gg: F32, gu: F32, n: number): void;
  /** cosSinBf16: cos and sin rounded to bfloat16 first (the reference's rotation of a bfloat16 x). */
  rope(
    x: F32,
    pos: I32,
    invFreq: F32,
    y: F32,
    rows: number,
    h: number,
    d: number,
    sign: number,
    cosSinBf16?: boolean,
  ): void;
  add(a: F32, b: F32, y: F32, n: number): void;
  addInplace(d: F32, s: F32, alpha: number, n: number, scalarSrc: boolean): void;
  mulInplace(d: F32, v: number, n: number): void;
  adamw(
    p: F32,
    g: F32,
    m: F32,
    v: F32,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    wd: number,
    step: number,
    maximize: boolean,
  ): void;
  embeddingFwd(ids: I32, w: F32, out: F32, n: number, hidden: number): void;
  embeddingBwd(ids: I32, g: F32, dw: F32, n: number, hidden: number, vocab: number): void;
  ceFwd(logits: F32, labels: I32, lse: F32, rowLoss: Float64Array, n: number, v: number, ignoreIndex: number): number;
  ceBwd(logits: F32, labels: I32, lse: F32, scales: Float64Array, out: F32, n: number, v: number): void;
  flceFwd(
    h: F32,
    w: F32,
    labels: I32,
    lse: F32,
    rowLoss: Float64Array,
    n: number,
    dim: number,
    v: number,
    ignoreIndex: number,
    chunk: number,
  ): number;
  flceBwd(
    h: F32,
    w: F32,
    labels: I32,
    lse: F32,
    scales: Float64Array,
    gh: F32 | null,
    gw: F32 | null,
    n: number,
    dim: number,
    v: number,
    chunk: number,
  ): void;
  softmaxFwd(x: F32, y: F32, rows: number, d: number, log: boolean): void;
  castToBf16(x: F32, y: Uint16Array, n: number): void;
  castFromBf16(x: Uint16Array, y: F32, n: number): void;
  fmaPeak(threads: number, seconds: number): number;
  /** y[n] = a op b (op codes in kernels.ts); aLen/bLen: n, `inner` (one row repeated) or 1 (scalar). */
  binary(op: number, a: F32, aLen: number, b: F32, bLen: number, y: F32 | Uint8Array, n: number, inner: number): void;
  unary(op: number, x: F32, y: F32, n: number, p: number, q: number): void;
  unaryBackward(op: number, g: F32, t: F32, y: F32, n: number): void;
  /** x as [outer, red, inner] -> [outer, inner]; idx (max/min) may be null for sum/mean. */
  reduce(op: number, x: F32, out: F32, idx: I32 | null, outer: number, red: number, inner: number): void;
  /** y over `shape` = a op b, each operand read at its element strides (0 = broadcast; last dim 0 or 1). */
  binaryBroadcast(
    op: number,
    a: F32,
    b: F32,
    y: F32 | Uint8Array,
    shape: Float64Array,
    strideA: Float64Array,
    strideB: Float64Array,
  ): void;
  /** y over `shape` = cond ? a : b (32-bit elements), operands at their strides as in binaryBroadcast. */
  whereBroadcast(
    cond: Uint8Array,
    a: F32,
    b: F32,
    y: F32,
    shape: Float64Array,
    strideC: Float64Array,
    strideA: Float64Array,
    strideB: Float64Array,
  ): void;
  /** g, y as [outer, size, inner]: dx = y * (g - sum(g * y)), or g - exp(y) * sum(g) when `log`. */
  softmaxBackward(g: F32, y: F32, dx: F32, outer: number, size: number, inner: number, log: boolean): void;
  /** x as [outer, red, inner] -> out [outer, inner] = log(sum(exp(x))) (max-subtracted). */
  logsumexp(x: F32, out: F32, outer: number, red: number, inner: number): void;
  castToF16(x: F32, y: Uint16Array, n: number): void;
  castFromF16(x: Uint16Array, y: F32, n: number): void;
  castF64ToF32(x: Float64Array, y: F32, n: number): void;
  castF32ToF64(x: F32, y: Float64Array, n: number): void;
  attentionFwd(
    q: F32,
    k: F32,
    v: F32,
    o: F32,
    lse: F32,
    seg: I32,
    hq: number,
    hkv: number,
    d: number,
    scale: number,
    causal: boolean,
  ): void;
  /**
   * Keys per block of the attention forward's online softmax (default 2048: one block up to 2048 visible keys);
   * 0 restores the default. Scores held per worker are at most [stacked heads x 64, keyBlock] floats.
   */
  setAttentionKeyBlock(keys: number): void;
  attentionBwd(
    q: F32,
    k: F32,
    v: F32,
    lse: F32,
    go: F32,
    dq: F32,
    dk: F32,
    dv: F32,
    seg: I32,
    hq: number,
    hkv: number,
    d: number,
    scale: number,
    causal: boolean,
  ): void;
  /**
   * dst (contiguous over `shape`) = src read at element `strides` (0 = broadcast); src and dst typed arrays of
   * one element size. false: an element size or rank the walk does not take (nothing written).
   */
  stridedCopy(src: RawArray, dst: RawArray, shape: Float64Array, strides: Float64Array): boolean;
  /** For o < outer: dst[o * row + offset ..] = src[o * chunk ..] (`chunk` elements): one input of cat. */
  catCopy(src: RawArray, dst: RawArray, outer: number, chunk: number, row: number, offset: number): void;
  /** src [outer, size, inner] -> dst [outer, idx.length, inner]; -1, or the first out-of-range index position. */
  indexSelect(src: RawArray, idx: I32, dst: RawArray, outer: number, size: number, n: number, inner: number): number;
  /**
   * dst (indexShape) [p] = src[base(p) + idx[p] * dimStride] (base: p's coordinates times baseStrides);
   * -1, the first out-of-range index position, or -2 (not handled).
   */
  gather(
    src: RawArray,
    idx: I32,
    dst: RawArray,
    indexShape: Float64Array,
    baseStrides: Float64Array,
    dimStride: number,
    size: number,
  ): number;
  /** Number of set (nonzero) bytes of a bool mask. */
  maskCount(mask: Uint8Array): number;
  /** dst[0, maskCount(mask)) = the elements of x where mask is set, in order; false: element size not taken. */
  maskedSelect(x: RawArray, mask: Uint8Array, dst: RawArray): boolean;
  /**
   * dst = x with the positions where mask is set taken, in order, from src; -1, the mask's count when src is
   * shorter (nothing written), or -2 (element size not taken).
   */
  maskedScatter(x: RawArray, mask: Uint8Array, src: RawArray, dst: RawArray): number;
  /**
   * out (holding x) += src at the positions idx names along `dim`, in index order (float32 or float64);
   * -1, the first out-of-range index position, or -2 (not handled).
   */
  scatterAdd(
    out: F32 | Float64Array,
    idx: I32,
    src: F32 | Float64Array,
    indexShape: Float64Array,
    dim: number,
    xStrides: Float64Array,
    srcStrides: Float64Array,
    size: number,
  ): number;
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const addonPath = join(packageRoot, 'native', 'build', 'Release', 'omnitrain_kernels_cpu.node');
let loaded: NativeAddon | null | undefined;
let reason = '';

/** The addon, loaded on first call; `null` when it is unavailable (see {@link nativeUnavailableReason}). */
export function native(): NativeAddon | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  try {
    if (process.env.OMNITRAIN_DISABLE_NATIVE === '1') {
      reason = 'disabled by OMNITRAIN_DISABLE_NATIVE=1';
    } else if (!existsSync(addonPath)) {
      const file = join(packageRoot, 'native', 'build', 'unavailable.txt');
      reason = existsSync(file)
        ? readFileSync(file, 'utf8').trim().split('\n').slice(0, 8).join('\n')
        : `${addonPath} was not built (run the package's build script)`;
    } else {
      const addon = createRequire(import.meta.url)(addonPath) as NativeAddon;
      const env = Number(process.env.OMNITRAIN_NUM_THREADS);
      if (Number.isInteger(env) && env > 0 && addon.info().threads !== env) addon.setThreads(env);
      loaded = addon;
    }
  } catch (e) {
    reason = `loading ${addonPath} failed: ${(e as Error).message}`;
  }
  return loaded;
}

/** Why the native backend is unavailable (empty string when it loaded). */
export function nativeUnavailableReason(): string {
  native();
  return loaded ? '' : reason;
}

/** State of the native CPU backend: loaded or "backend unavailable: <why>", ISA, threads. */
export function nativeStatus(): { available: boolean; message: string; isa?: string; threads?: number } {
  const n = native();
  if (!n) return { available: false, message: `backend unavailable: ${reason}` };
  const i = n.info();
  return {
    available: true,
    message: `native cpu kernels: ${i.isa}, ${i.threads} threads, gemm ${i.gemm}, ${i.blas}`,
    isa: i.isa,
    threads: i.threads,
  };
}

/** Resize the native thread pool (and BLAS threads). Also settable with OMNITRAIN_NUM_THREADS. */
export function setNumThreads(n: number): void {
  const a = native();
  if (!a) throw new Error(`setNumThreads: backend unavailable: ${reason}`);
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads: expected a positive integer, got ${n}`);
  a.setThreads(n);
}

/**
 * bfloat16 matmul kernel: 0 = auto (the AVX-512 BF16 GEMM where the CPU has avx512bf16, else operands widened to
 * float32 and the float32 GEMM), 1 = force the scalar emulation of the AVX-512 BF16 kernel (same packing and loops,
 * any x86-64; slow, for tests), 2 = off (always widen). Set by `OMNITRAIN_GEMM_BF16` (`auto`, `emulate`, `off`).
 * The default is `off`: the vdpbf16ps kernel is tested bit for bit against its emulation, but has not yet run on a
 * CPU with AVX-512 BF16, so it stays opt-in until `scripts/device/cpu-check.sh` has run it on one.
 */
export type GemmBf16Mode = 0 | 1 | 2;
let bf16Mode: GemmBf16Mode | undefined;

/** The current {@link GemmBf16Mode} (first call reads `OMNITRAIN_GEMM_BF16`). */
export function gemmBf16Mode(): GemmBf16Mode {
  if (bf16Mode === undefined) {
    const e = process.env.OMNITRAIN_GEMM_BF16;
    bf16Mode = e === 'auto' ? 0 : e === 'emulate' ? 1 : 2;
  }
  return bf16Mode;
}

/** Select the bfloat16 matmul kernel (see {@link GemmBf16Mode}); overrides `OMNITRAIN_GEMM_BF16`. */
export function setGemmBf16Mode(mode: GemmBf16Mode): void {
  if (mode !== 0 && mode !== 1 && mode !== 2) throw new Error(`setGemmBf16Mode: expected 0, 1 or 2, got ${mode}`);
  bf16Mode = mode;
}

/** Measured fp32 FMA peak (GFLOP/s) of `threads` cores for `seconds` (SIMD microbenchmark). */
export function fmaPeakGflops(threads: number, seconds = 0.5): number {
  const a = native();
  if (!a) throw new Error(`fmaPeakGflops: backend unavailable: ${reason}`);
  return a.fmaPeak(threads, seconds);
}
