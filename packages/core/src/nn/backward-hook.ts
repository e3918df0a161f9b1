// Module backward hooks, built like PyTorch's torch.utils.hooks.BackwardHook: the tensors
// going into and coming out of `forward` are passed through identity nodes on the tape. The
// output node sees the gradients w.r.t. the outputs (backward pre-hooks), the input node the
// gradients w.r.t. the inputs (full backward hooks, which also get the output gradients).

import { record } from '../autograd/node.js';
import { Tensor } from '../tensor.js';

/** Called with the gradients w.r.t. the module's tensor outputs; may return replacements. */
export type BackwardPreHook<M = any> = (
  module: M,
  gradOutput: (Tensor | null)[],
) => (Tensor | null)[] | undefined | void;

/**
 * Called with the gradients w.r.t. the module's tensor inputs (null for inputs that need none)
 * and w.r.t. its outputs; may return replacement input gradients.
 */
export type FullBackwardHook<M = any> = (
  module: M,
  gradInput: (Tensor | null)[],
  gradOutput: (Tensor | null)[],
) => (Tensor | null)[] | undefined | void;

const isTensor = (v: unknown): v is Tensor => v instanceof Tensor;

/** Identity node over the tensors of `values` that require grad; returns the aliases by position. */
function wrap(
  values: readonly unknown[],
  backward: (grads: (Tensor | null)[]) => (Tensor | null)[],
): { out: unknown[]; wrapped: boolean } {
  const positions: number[] = [];
  values.forEach((v, i) => {
    if (isTensor(v) && v.requiresGrad) positions.push(i);
  });
  if (!positions.length) return { out: [...values], wrapped: false };
  const inputs = positions.map((i) => values[i] as Tensor);
  const aliases = inputs.map((t) => t.detach());
  // grads arrive per wrapped tensor; the hook works per tensor value (null where none).
  record('BackwardHookFunctionBackward', inputs, aliases, (grads) => {
    const full: (Tensor | null)[] = values.map(() => null);
    positions.forEach((p, k) => {
      full[p] = grads[k] ?? null;
    });
    const result = backward(full);
    return positions.map((p) => result[p] ?? null);
  });
  const out = [...values];
  positions.forEach((p, k) => {
    out[p] = aliases[k];
  });
  return { out, wrapped: true };
}

/** Flatten a forward result into tensors (a tensor, an array, or a plain object of values). */
function flatten(result: unknown): { values: unknown[]; rebuild: (values: unknown[]) => unknown } {
  if (isTensor(result)) return { values: [result], rebuild: (v) => v[0] };
  if (Array.isArray(result)) return { values: [...result], rebuild: (v) => v };
  if (result !== null && typeof result === 'object' && Object.getPrototypeOf(result) === Object.prototype) {
    const keys = Object.keys(result);
    return {
      values: keys.map((k) => (result as Record<string, unknown>)[k]),
      rebuild: (v) => Object.fromEntries(keys.map((k, i) => [k, v[i]])),
    };
  }
  return { values: [], rebuild: () => result };
}

function checkReplacement(what: string, got: unknown, want: number): (Tensor | null)[] {
  if (!Array.isArray(got) || got.length !== want) {
    throw new Error(
      `${what} must return an array of ${want} gradients (or nothing), got ${Array.isArray(got) ? got.length : typeof got}`,
    );
  }
  return got as (Tensor | null)[];
}

/** The per-call state that links a module's output gradients to its input gradients. */
export class BackwardHookState {
  private gradOutputs: (Tensor | null)[] | null = null;
  private inputWrapped = false;
  private tensorArgs: number[] = [];
  private readonly preHooks: BackwardPreHook[];
  private readonly fullHooks: FullBackwardHook[];

  constructor(
    private readonly module: unknown,
    preHooks: readonly BackwardPreHook[],
    fullHooks: readonly FullBackwardHook[],
  ) {
    this.preHooks = [...preHooks];
    this.fullHooks = [...fullHooks];
  }

  /** Wrap the tensor arguments that require grad; returns the arguments to call forward with. */
  setupInputs(args: unknown[]): unknown[] {
    this.tensorArgs = args.map((a, i) => (isTensor(a) ? i : -1)).filter((i) => i >= 0);
    if (!this.fullHooks.length) return args;
    const { out, wrapped } = wrap(args, (grads) => this.onInputGrads(grads));
    this.inputWrapped = wrapped;
    return out;
  }

  /** Wrap the tensor outputs that require grad; returns the result to hand back. */
  setupOutputs(result: unknown): unknown {
    const { values, rebuild } = flatten(result);
    const tensorOuts = values.map((v, i) => (isTensor(v) ? i : -1)).filter((i) => i >= 0);
    const { out, wrapped } = wrap(values, (grads) => this.onOutputGrads(grads, tensorOuts));
    return wrapped ? rebuild(out) : result;
  }

  private onOutputGrads(grads: (Tensor | null)[], tensorOuts: number[]): (Tensor | null)[] {
    let gradOutput = tensorOuts.map((i) => grads[i] ?? null);
    for (const h of this.preHooks) {
      const r = h(this.module, gradOutput);
      if (r !== undefined) gradOutput = checkReplacement('a backward pre-hook', r, tensorOuts.length);
    }
    if (this.inputWrapped) {
      // Own views: the engine may free the originals before the input gradients are ready.
      this.gradOutputs = gradOutput.map((g) => (g ? g.detach() : null));
    } else if (this.fullHooks.length) {
      const none = this.tensorArgs.map(() => null);
      for (const h of this.fullHooks) h(this.module, none, gradOutput);
    }
    const full: (Tensor | null)[] = grads.map(() => null);
    tensorOuts.forEach((p, k) => {
      full[p] = gradOutput[k] ?? null;
    });
    return full;
  }

  private onInputGrads(grads: (Tensor | null)[]): (Tensor | null)[] {
    let gradInput = this.tensorArgs.map((i) => grads[i] ?? null);
    const gradOutput = this.gradOutputs ?? [];
    for (const h of this.fullHooks) {
      const r = h(this.module, gradInput, gradOutput);
      if (r !== undefined) gradInput = checkReplacement('a full backward hook', r, this.tensorArgs.length);
    }
    this.gradOutputs = null;
    const full: (Tensor | null)[] = grads.map(() => null);
    this.tensorArgs.forEach((p, k) => {
      full[p] = gradInput[k] ?? null;
    });
    return full;
  }
}
