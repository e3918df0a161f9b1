import type { DType } from '../dtype.js';
import type { Tensor } from '../tensor.js';
import { isGradEnabled } from './grad-mode.js';

/** A gradient hook: sees the gradient, may return a replacement. */
export type GradHook = (grad: Tensor) => Tensor | undefined | void;

/** Where an input's gradient goes: another node's output, or a leaf tensor's `.grad`. */
export type Edge = { node: GradNode; index: number } | { leaf: Tensor };

/**
 * Computes input gradients from output gradients. Receives the tensors saved at forward time
 * (never capture input tensors in the closure: they may be disposed before backward runs).
 */
export type BackwardFn = (grads: (Tensor | null)[], saved: Tensor[]) => (Tensor | null)[];

/** One recorded op on the autograd tape. */
export class GradNode {
  /** Hooks on this node's output gradients, by output index. */
  readonly outputHooks = new Map<number, GradHook[]>();
  /** Called with the output gradients before `backward` runs (module backward pre-hooks). */
  readonly preHooks: ((grads: (Tensor | null)[]) => void)[] = [];
  private saved: Tensor[] | null;

  constructor(
    /** Op name, for error messages and profiles. */
    readonly name: string,
    /** Per input: where its gradient flows (null when it needs none). */
    readonly next: (Edge | null)[],
    private readonly backwardFn: BackwardFn,
    /** Shape and dtype of each output, to make zero gradients for unused outputs. */
    readonly outputs: { shape: readonly number[]; dtype: DType; device: string }[],
    saved: Tensor[],
  ) {
    this.saved = saved;
  }

  /** Run the backward function, then free the saved tensors. */
  apply(grads: (Tensor | null)[]): (Tensor | null)[] {
    if (!this.saved) {
      throw new Error(`autograd: backward through '${this.name}' a second time; the graph was already freed`);
    }
    try {
      return this.backwardFn(grads, this.saved);
    } finally {
      this.release();
    }
  }

  /** Free the saved tensors without running backward (graph discarded). */
  release(): void {
    if (!this.saved) return;
    for (const t of this.saved) if (!t.isDisposed) t.dispose();
    this.saved = null;
  }
}

/** True when any input needs a gradient and recording is on. */
export function needsGrad(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}

/**
 * Record an op on the tape: links `outputs` to `inputs` through `backward`.
 * `toSave` tensors stay alive (sharing storage) until backward has used them.
 * A no-op when no input requires a gradient or grad mode is off.
 */
export function record(
  name: string,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  backward: BackwardFn,
  toSave: readonly Tensor[] = [],
): void {
  if (!needsGrad(inputs)) return;
  const next: (Edge | null)[] = inputs.map((t) => {
    if (!t.requiresGrad) return null;
    return t.gradFn ? { node: t.gradFn, index: t.outputIndex } : { leaf: t };
  });
  const saved = toSave.map((t) => t.aliasForAutograd());
  const node = new GradNode(
    name,
    next,
    backward,
    outputs.map((o) => ({ shape: o.shape, dtype: o.dtype, device: o.device })),
    saved,
  );
  outputs.forEach((o, i) => {
    if (o.isFloatingPoint) o.setGradFn(node, i);
  });
}
