import type { Tensor } from './tensor.js';

// Explicit memory: a stack of scopes, each remembering the tensors made inside it.
const scopes: Set<Tensor>[] = [];

/** Record a new tensor in the innermost scope (called by the Tensor constructor). */
export function trackTensor(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Forget a tensor in every scope (it was kept or disposed). */
export function untrackTensor(t: Tensor): void {
  for (const s of scopes) s.delete(t);
}

function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if ((value as { isTensor?: boolean }).isTensor === true) {
    out.add(value as Tensor);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collect(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, out, depth + 1);
}

/**
 * Run `fn` and dispose every tensor created inside it, except the tensors it returns
 * (in an array or plain object too) and those passed to `keep`. Returned tensors move to
 * the enclosing scope. Synchronous functions only.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T | undefined;
  let ok = false;
  try {
    result = fn();
    ok = true;
    return result;
  } finally {
    scopes.pop();
    const survivors = new Set<Tensor>();
    if (ok) collect(result, survivors);
    for (const t of scope) if (!survivors.has(t) && !t.isDisposed) t.dispose();
    for (const t of survivors) if (scope.has(t)) trackTensor(t);
  }
}

/** Exempt a tensor from every enclosing `tidy`; the caller now disposes it. */
export function keep<T extends Tensor>(t: T): T {
  untrackTensor(t);
  return t;
}

/** Dispose a tensor, or every tensor in an array or plain object. */
export function dispose(value: unknown): void {
  const all = new Set<Tensor>();
  collect(value, all);
  for (const t of all) if (!t.isDisposed) t.dispose();
}
