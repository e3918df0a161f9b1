// nn.Module: a tree of modules owning parameters and buffers, with PyTorch's naming,
// state dicts, device/dtype moves and hooks.

import { isGradEnabled, noGrad } from '../autograd/grad-mode.js';
import { DTYPES, type DType, isFloating } from '../dtype.js';
import { keep } from '../memory.js';
import { dispatch1 } from '../ops/dispatch.js';
import { sameShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { BackwardHookState, type BackwardPreHook, type FullBackwardHook } from './backward-hook.js';
import { replayInit } from './init.js';
import { Buffer, Parameter } from './parameter.js';
import { copyInto, transferred } from './transfer.js';

export type { BackwardPreHook, FullBackwardHook } from './backward-hook.js';

/** Called before `forward` with its arguments; may return replacement arguments (an array, or one value). */
export type ForwardPreHook<M = any> = (module: M, args: unknown[]) => unknown;
/** Called after `forward` with its arguments and result; may return a replacement result. */
export type ForwardHook<M = any> = (module: M, args: unknown[], output: any) => unknown;

/** Returned by every `register...Hook`: `remove()` unregisters the hook. */
export interface RemovableHandle {
  remove(): void;
}

/** What `loadStateDict` did not match (only reported when `strict` is false). */
export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/** A device (`cpu`, `cuda:0`, `meta`), a dtype, or both. */
export type ToTarget = string | DType | { device?: string; dtype?: DType };

type Kind = 'parameter' | 'buffer' | 'module';
type Member = { kind: Kind; value: Parameter | Buffer | Module | null; explicit: boolean };

function kindOf(v: unknown): Kind | null {
  if (v instanceof Parameter) return 'parameter';
  if (v instanceof Buffer) return 'buffer';
  if (v instanceof Module) return 'module';
  return null;
}

function checkName(name: string, where: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('.')) {
    throw new Error(`${where}: invalid name '${name}' (non-empty, no '.')`);
  }
}

const join = (prefix: string, name: string) => (prefix ? `${prefix}.${name}` : name);

function handle<T>(list: T[], item: T): RemovableHandle {
  list.push(item);
  return {
    remove() {
      const i = list.indexOf(item);
      if (i >= 0) list.splice(i, 1);
    },
  };
}

/**
 * Base class of every layer and model, like `torch.nn.Module`.
 *
 * Registration. Fields holding a `Parameter`, a `Buffer` or a `Module` are registered
 * automatically under the field's name, in assignment order (as PyTorch's `__setattr__` does):
 * `this.weight = parameter(...)`, `this.mlp = new Mlp()`. Reassigning the field re-registers it;
 * setting it to `null` leaves an empty slot (like `self.bias = None`). To use a name that is not
 * a field — `up_proj` for a field `upProj`, or `'0'`, `'1'` in a list — call
 * `registerParameter/registerBuffer/registerModule(name, value)`; a name registered that way
 * belongs to those calls (assigning a field of that name does not change it), and a field
 * holding an already explicitly registered value is not registered twice.
 * Fully qualified names join the path with dots (`layers.0.mlp.up_proj.weight`), as PyTorch's.
 *
 * Calling. Subclasses implement `forward`; callers use `call(...)`, which runs the forward
 * pre-hooks, forward, the forward hooks, and sets up backward hooks.
 */
export class Module {
  /** Training mode (`train()` / `eval()`). */
  training = true;
  #members = new Map<string, Member>();
  #forwardPreHooks: ForwardPreHook[] = [];
  #forwardHooks: ForwardHook[] = [];
  #backwardPreHooks: BackwardPreHook[] = [];
  #backwardHooks: FullBackwardHook[] = [];

  /** The computation; implemented by subclasses and run through `call`. */
  forward(..._args: any[]): any {
    throw new Error(`${this.constructor.name}: forward() is not implemented`);
  }

  /** Run `forward` with the hooks: forward pre-hooks, forward, forward hooks, backward hooks. */
  call<M extends Module>(this: M, ...args: Parameters<M['forward']>): ReturnType<M['forward']> {
    let a: unknown[] = args;
    for (const h of [...this.#forwardPreHooks]) {
      const r = h(this, a);
      if (r !== undefined) a = Array.isArray(r) ? r : [r];
    }
    const bw =
      isGradEnabled() && (this.#backwardHooks.length || this.#backwardPreHooks.length)
        ? new BackwardHookState(this, this.#backwardPreHooks, this.#backwardHooks)
        : null;
    if (bw) a = bw.setupInputs(a);
    let out = this.forward(...a);
    for (const h of [...this.#forwardHooks]) {
      const r = h(this, a, out);
      if (r !== undefined) out = r;
    }
    if (bw) out = bw.setupOutputs(out);
    return out;
  }

  // ---------------------------------------------------------------- registration

  /** Register (or replace) parameter `name`; `null` leaves an empty slot. Returns `p`. */
  registerParameter<P extends Parameter | null>(name: string, p: P): P {
    if (p !== null && !(p instanceof Parameter)) {
      throw new Error(`registerParameter('${name}'): expected a Parameter (wrap the tensor with nn.parameter())`);
    }
    this.#register(name, 'parameter', p);
    return p;
  }

  /**
   * Register (or replace) buffer `name`. A plain tensor is wrapped in a `Buffer` (sharing its
   * storage; the tensor stays the caller's) with `persistent` (default true). Returns the Buffer.
   */
  registerBuffer(name: string, t: Tensor | null, opts: { persistent?: boolean } = {}): Buffer | null {
    const b = t === null ? null : t instanceof Buffer && opts.persistent === undefined ? t : new Buffer(t, opts);
    this.#register(name, 'buffer', b);
    return b;
  }

  /** Register (or replace) child module `name`. Returns `m`. */
  registerModule<M extends Module | null>(name: string, m: M): M {
    if (m !== null && !(m instanceof Module)) throw new Error(`registerModule('${name}'): expected a Module`);
    this.#register(name, 'module', m);
    return m;
  }

  #register(name: string, kind: Kind, value: Member['value']): void {
    checkName(name, `register ${kind}`);
    this.#sync();
    const old = this.#members.get(name);
    if (old && old.kind !== kind && old.value !== null) {
      throw new Error(`cannot register ${kind} '${name}': a ${old.kind} of that name exists`);
    }
    if (old) {
      old.kind = kind;
      old.value = value;
      old.explicit = true;
    } else this.#members.set(name, { kind, value, explicit: true });
  }

  /** Pick up fields holding parameters, buffers and modules (see the class comment). */
  #sync(): void {
    let explicitValues: Set<unknown> | null = null;
    const seen = new Set<string>();
    for (const key of Object.keys(this)) {
      const v = (this as Record<string, unknown>)[key];
      const kind = kindOf(v);
      const m = this.#members.get(key);
      if (m?.explicit) continue;
      seen.add(key);
      if (m) {
        m.value = kind ? (v as Member['value']) : null;
        if (kind) m.kind = kind;
        continue;
      }
      if (!kind) continue;
      explicitValues ??= new Set([...this.#members.values()].filter((e) => e.explicit).map((e) => e.value));
      if (explicitValues.has(v)) continue;
      this.#members.set(key, { kind, value: v as Member['value'], explicit: false });
    }
    for (const [key, m] of this.#members) if (!m.explicit && !seen.has(key)) m.value = null;
  }

  #own<T>(kind: Kind): [string, T][] {
    this.#sync();
    const out: [string, T][] = [];
    for (const [name, m] of this.#members) if (m.kind === kind && m.value !== null) out.push([name, m.value as T]);
    return out;
  }

  // ---------------------------------------------------------------- traversal

  /** Direct children with their names (each module once). */
  namedChildren(): [string, Module][] {
    const seen = new Set<Module>();
    return this.#own<Module>('module').filter(([, m]) => {
      if (seen.has(m)) return false;
      seen.add(m);
      return true;
    });
  }

  /** Direct children. */
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** This module and every descendant, pre-order, with dotted names ('' for this one). */
  namedModules(opts: { prefix?: string; removeDuplicate?: boolean } = {}): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const dedupe = opts.removeDuplicate ?? true;
    const visit = (m: Module, prefix: string) => {
      if (dedupe) {
        if (seen.has(m)) return;
        seen.add(m);
      }
      out.push([prefix, m]);
      for (const [name, c] of m.#own<Module>('module')) visit(c, join(prefix, name));
    };
    visit(this, opts.prefix ?? '');
    return out;
  }

  /** Every module of the tree (this one first). */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  #namedTensors<T>(kind: Kind, opts: { prefix?: string; recurse?: boolean; removeDuplicate?: boolean }): [string, T][] {
    const dedupe = opts.removeDuplicate ?? true;
    const mods: [string, Module][] =
      (opts.recurse ?? true)
        ? this.namedModules({ prefix: opts.prefix, removeDuplicate: dedupe })
        : [[opts.prefix ?? '', this]];
    const seen = new Set<T>();
    const out: [string, T][] = [];
    for (const [prefix, m] of mods) {
      for (const [name, t] of m.#own<T>(kind)) {
        if (dedupe) {
          if (seen.has(t)) continue;
          seen.add(t);
        }
        out.push([join(prefix, name), t]);
      }
    }
    return out;
  }

  /**
   * Parameters with fully qualified names (`layers.0.mlp.up_proj.weight`), in PyTorch's order:
   * a module's own parameters, then its children's. A parameter shared by several modules
   * (tied weights) is listed once, under its first name, unless `removeDuplicate` is false.
   */
  namedParameters(opts: { prefix?: string; recurse?: boolean; removeDuplicate?: boolean } = {}): [string, Parameter][] {
    return this.#namedTensors<Parameter>('parameter', opts);
  }

  /** All parameters (each once). */
  parameters(recurse = true): Parameter[] {
    return this.namedParameters({ recurse }).map(([, p]) => p);
  }

  /** Buffers with fully qualified names. */
  namedBuffers(opts: { prefix?: string; recurse?: boolean; removeDuplicate?: boolean } = {}): [string, Buffer][] {
    return this.#namedTensors<Buffer>('buffer', opts);
  }

  /** All buffers (each once). */
  buffers(recurse = true): Buffer[] {
    return this.namedBuffers({ recurse }).map(([, b]) => b);
  }

  /** Number of parameter elements (each shared parameter once). */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /** Call `fn` on every descendant, children first, then on this module (as PyTorch). Returns this. */
  apply(fn: (m: Module) => void): this {
    for (const c of this.children()) c.apply(fn);
    fn(this);
    return this;
  }

  // ---------------------------------------------------------------- modes and gradients

  /** Set training mode on this module and every descendant. Returns this. */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode (`train(false)`). */
  eval(): this {
    return this.train(false);
  }

  /** Clear the gradients: dispose and set to null (default), or fill with zeros. */
  zeroGrad(setToNone = true): void {
    for (const p of this.parameters()) {
      if (!p.grad) continue;
      if (setToNone) {
        p.grad.dispose();
        p.grad = null;
      } else if (p.grad.device !== 'meta') dispatch1('fill_', [p.grad], { value: 0 });
    }
  }

  /** Set `requiresGrad` on every parameter. Returns this. */
  requiresGrad_(value = true): this {
    for (const p of this.parameters()) p.requiresGrad_(value);
    return this;
  }

  // ---------------------------------------------------------------- state dict

  /**
   * Parameters and persistent buffers by fully qualified name, own ones first, then each
   * child's (tied tensors appear under every name, as in PyTorch). The values are the
   * module's own tensors, not copies: read them, do not dispose them.
   */
  stateDict(opts: { prefix?: string } = {}): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    const visit = (m: Module, prefix: string) => {
      for (const [name, p] of m.#own<Parameter>('parameter')) out[prefix + name] = p;
      for (const [name, b] of m.#own<Buffer>('buffer')) if (b.persistent) out[prefix + name] = b;
      for (const [name, c] of m.#own<Module>('module')) visit(c, `${prefix}${name}.`);
    };
    visit(this, opts.prefix ?? '');
    return out;
  }

  /**
   * Copy values from `stateDict` into this module's parameters and buffers (in place,
   * converting dtype and device; Parameter identity is kept). Shape mismatches are always
   * errors; missing and unexpected keys are errors when `strict` (default). Everything is
   * checked first: on any error nothing is loaded, and the error lists every problem.
   */
  loadStateDict(
    stateDict: Record<string, Tensor> | Map<string, Tensor>,
    opts: { strict?: boolean } = {},
  ): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const given = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict));
    const own = this.stateDict();
    const missingKeys: string[] = [];
    const mismatches: string[] = [];
    const copies: [Tensor, Tensor][] = [];
    for (const [key, dst] of Object.entries(own)) {
      const src = given.get(key);
      if (!src) {
        missingKeys.push(key);
        continue;
      }
      if (!(src instanceof Tensor) || src.isDisposed) {
        mismatches.push(`'${key}' is ${src instanceof Tensor ? 'a disposed tensor' : 'not a tensor'}`);
      } else if (!sameShape(src.shape, dst.shape)) {
        mismatches.push(
          `size mismatch for '${key}': copying a tensor of shape ${JSON.stringify(src.shape)} from the state dict, ` +
            `the shape in the current model is ${JSON.stringify(dst.shape)}`,
        );
      } else if (src.device === 'meta' && dst.device !== 'meta') {
        mismatches.push(`'${key}' is a meta tensor (no data)`);
      } else copies.push([dst, src]);
    }
    const unexpectedKeys = [...given.keys()].filter((k) => !(k in own));
    const problems: string[] = [];
    if (strict && missingKeys.length) problems.push(`Missing key(s): ${missingKeys.map((k) => `'${k}'`).join(', ')}.`);
    if (strict && unexpectedKeys.length) {
      problems.push(`Unexpected key(s): ${unexpectedKeys.map((k) => `'${k}'`).join(', ')}.`);
    }
    problems.push(...mismatches);
    if (problems.length) {
      throw new Error(`Error(s) in loading state dict for ${this.constructor.name}:\n  ${problems.join('\n  ')}`);
    }
    noGrad(() => {
      for (const [dst, src] of copies) copyInto(dst, src);
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---------------------------------------------------------------- device and dtype

  /** Every distinct parameter and buffer of the tree. */
  #tensors(): (Parameter | Buffer)[] {
    return [...this.parameters(), ...this.buffers()];
  }

  /**
   * Move and/or cast parameters and buffers in place: `to('cuda:0')`, `to('bfloat16')`,
   * `to({ device, dtype })`. Only floating tensors change dtype. Parameters and buffers keep
   * their identity (`setData`); gradients move with them. Returns this.
   */
  to(target: ToTarget): this {
    let device: string | undefined;
    let dtype: DType | undefined;
    if (typeof target === 'string') {
      if ((DTYPES as readonly string[]).includes(target)) dtype = target as DType;
      else device = target;
    } else ({ device, dtype } = target);
    noGrad(() => {
      for (const t of this.#tensors()) {
        const want = dtype && isFloating(t.dtype) ? dtype : t.dtype;
        const moved = transferred(t, device ?? t.device, want);
        if (moved) {
          t.setData(moved);
          moved.dispose();
        }
        if (t instanceof Parameter && t.grad) {
          const g = transferred(t.grad, device ?? t.grad.device, want);
          if (g) {
            t.grad.dispose();
            t.grad = keep(g);
          }
        }
      }
    });
    return this;
  }

  /**
   * Give every parameter and buffer fresh uninitialised (zeroed) storage on `device`, keeping
   * identities — PyTorch's `to_empty`, used to leave the `meta` device. Gradients are dropped.
   */
  toEmpty(device: string): this {
    for (const t of this.#tensors()) {
      const fresh = Tensor.empty(t.shape, t.dtype, device);
      t.setData(fresh);
      fresh.dispose();
      if (t instanceof Parameter && t.grad) {
        t.grad.dispose();
        t.grad = null;
      }
    }
    return this;
  }

  /**
   * `toEmpty(device)`, then regenerate every tensor's recorded initialisation (`nn.init`):
   * a model built on `meta` gets exactly the values it would have had if built on `device`.
   */
  materialize(device: string): this {
    this.toEmpty(device);
    noGrad(() => {
      for (const t of this.#tensors()) replayInit(t);
    });
    return this;
  }

  /** Dispose every parameter, buffer and gradient of the tree. */
  dispose(): void {
    for (const t of this.#tensors()) {
      if (t instanceof Parameter && t.grad) {
        t.grad.dispose();
        t.grad = null;
      }
      t.dispose();
    }
  }

  // ---------------------------------------------------------------- hooks

  /** Run `hook(module, args)` before every forward; it may return replacement arguments. */
  registerForwardPreHook<M extends Module>(this: M, hook: ForwardPreHook<M>): RemovableHandle {
    return handle(this.#forwardPreHooks, hook as ForwardPreHook);
  }

  /** Run `hook(module, args, output)` after every forward; it may return a replacement output. */
  registerForwardHook<M extends Module>(this: M, hook: ForwardHook<M>): RemovableHandle {
    return handle(this.#forwardHooks, hook as ForwardHook);
  }

  /**
   * Run `hook(module, gradOutput)` when the gradients w.r.t. this module's outputs are known
   * (before they flow into the module); it may return replacements.
   */
  registerFullBackwardPreHook<M extends Module>(this: M, hook: BackwardPreHook<M>): RemovableHandle {
    return handle(this.#backwardPreHooks, hook as BackwardPreHook);
  }

  /**
   * Run `hook(module, gradInput, gradOutput)` when the gradients w.r.t. this module's tensor
   * inputs are computed; it may return replacement input gradients. When no input requires
   * grad it runs with null input gradients as soon as the output gradients are known.
   */
  registerFullBackwardHook<M extends Module>(this: M, hook: FullBackwardHook<M>): RemovableHandle {
    return handle(this.#backwardHooks, hook as FullBackwardHook);
  }
}
