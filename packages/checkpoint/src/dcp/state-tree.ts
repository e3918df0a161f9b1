import type { Tensor } from '@omnitrain/core';
import { isShardedTensor, isTensor, type ShardedTensor } from './sharded-tensor.js';

/**
 * What a checkpoint holds: a tree of plain objects and arrays whose leaves are tensors
 * (replicated: saved by rank 0), {@link ShardedTensor}s (each rank saves its block) or JSON values
 * (numbers, strings, booleans, null). E.g.
 * `{ model, optim: opt.stateDict(), sched: sched.stateDict(), data: loader.state(), rng: gen.getState(), step }`.
 * A tensor's name is its path joined with `.` (`optim.state.0.exp_avg`).
 */
export type StateTree = unknown;

/** A tensor leaf of a state tree. */
export type TensorLeaf = Tensor | ShardedTensor;

/**
 * Split a tree into its tensor leaves (by name) and a JSON copy with each tensor replaced by
 * `{"$tensor": name}`.
 */
export function flattenState(tree: StateTree, where: string): { tensors: Map<string, TensorLeaf>; json: unknown } {
  const tensors = new Map<string, TensorLeaf>();
  const walk = (v: unknown, path: string[]): unknown => {
    if (isTensor(v) || isShardedTensor(v)) {
      const name = path.join('.');
      if (tensors.has(name)) throw new Error(`${where}: two tensors are named '${name}' (rename the keys)`);
      tensors.set(name, v);
      return { $tensor: name };
    }
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new Error(`${where}: '${path.join('.')}' is ${v} (JSON cannot hold it)`);
      return v;
    }
    if (typeof v === 'bigint') return v.toString();
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, String(i)]));
    if (typeof v === 'object') {
      if (ArrayBuffer.isView(v)) {
        throw new Error(`${where}: '${path.join('.')}' is a typed array; store a tensor or a plain array`);
      }
      if ('$tensor' in v) throw new Error(`${where}: '${path.join('.')}' has a key '$tensor', which is reserved`);
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        if (x === undefined || typeof x === 'function') continue;
        out[k] = walk(x, [...path, k]);
      }
      return out;
    }
    if (v === undefined) return null;
    throw new Error(`${where}: '${path.join('.')}' is a ${typeof v}, which a checkpoint cannot hold`);
  };
  const json = walk(tree, []);
  return { tensors, json };
}

/** Replace every `{"$tensor": name}` of `json` with `resolve(name)`. */
export function resolveState(json: unknown, resolve: (name: string) => unknown): unknown {
  if (Array.isArray(json)) return json.map((x) => resolveState(x, resolve));
  if (json && typeof json === 'object') {
    const o = json as Record<string, unknown>;
    if (typeof o.$tensor === 'string') return resolve(o.$tensor);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) out[k] = resolveState(v, resolve);
    return out;
  }
  return json;
}

/** Names of the tensors a JSON state references. */
export function tensorRefs(json: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(json)) for (const x of json) tensorRefs(x, out);
  else if (json && typeof json === 'object') {
    const o = json as Record<string, unknown>;
    if (typeof o.$tensor === 'string') out.add(o.$tensor);
    else for (const v of Object.values(o)) tensorRefs(v, out);
  }
  return out;
}
