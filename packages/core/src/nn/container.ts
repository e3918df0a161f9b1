// Containers: ModuleList and ModuleDict register their entries under their index or key.

import { Module } from './module.js';

/** A list of modules registered as `0`, `1`, ... (`torch.nn.ModuleList`). */
export class ModuleList<M extends Module = Module> extends Module {
  #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  /** Add a module at the end. Returns this. */
  append(m: M): this {
    this.registerModule(String(this.#items.length), m);
    this.#items.push(m);
    return this;
  }

  /** Add several modules at the end. Returns this. */
  extend(ms: Iterable<M>): this {
    for (const m of ms) this.append(m);
    return this;
  }

  /** Number of modules. */
  get length(): number {
    return this.#items.length;
  }

  /** Module `i` (negative counts from the end). */
  at(i: number): M {
    const m = this.#items.at(i);
    if (!m) throw new Error(`ModuleList.at(${i}): index out of range for length ${this.#items.length}`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }

  /** The modules as an array (a copy). */
  toArray(): M[] {
    return [...this.#items];
  }

  override forward(): never {
    throw new Error('ModuleList has no forward(); iterate over its modules');
  }
}

/** Modules by name (`torch.nn.ModuleDict`), in insertion order. */
export class ModuleDict<M extends Module = Module> extends Module {
  #items = new Map<string, M>();

  constructor(modules: Record<string, M> | Iterable<[string, M]> = {}) {
    super();
    const entries = Symbol.iterator in Object(modules) ? (modules as Iterable<[string, M]>) : Object.entries(modules);
    for (const [k, m] of entries) this.set(k, m);
  }

  /** Add or replace module `key`. Returns this. */
  set(key: string, m: M): this {
    this.registerModule(key, m);
    this.#items.set(key, m);
    return this;
  }

  /** Module `key`, or an error naming the keys that exist. */
  get(key: string): M {
    const m = this.#items.get(key);
    if (!m) throw new Error(`ModuleDict: no module '${key}'; keys: ${[...this.#items.keys()].join(', ') || '(none)'}`);
    return m;
  }

  /** Whether `key` exists. */
  has(key: string): boolean {
    return this.#items.has(key);
  }

  /** Keys in insertion order. */
  keys(): string[] {
    return [...this.#items.keys()];
  }

  /** [key, module] pairs in insertion order. */
  entries(): [string, M][] {
    return [...this.#items.entries()];
  }

  /** Number of modules. */
  get size(): number {
    return this.#items.size;
  }

  override forward(): never {
    throw new Error('ModuleDict has no forward(); look its modules up by key');
  }
}
