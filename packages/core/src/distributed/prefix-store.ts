import type { Store } from './store.js';

/** A view of `store` where every key is `${prefix}/${key}` (one per process group). */
export class PrefixStore implements Store {
  constructor(
    readonly prefix: string,
    readonly store: Store,
  ) {}

  private k(key: string): string {
    return `${this.prefix}/${key}`;
  }

  set(key: string, value: Uint8Array | string): Promise<void> {
    return this.store.set(this.k(key), value);
  }
  get(key: string, timeoutMs?: number): Promise<Uint8Array> {
    return this.store.get(this.k(key), timeoutMs);
  }
  add(key: string, delta: number | bigint): Promise<bigint> {
    return this.store.add(this.k(key), delta);
  }
  check(keys: string | readonly string[]): Promise<boolean> {
    return this.store.check(typeof keys === 'string' ? this.k(keys) : keys.map((x) => this.k(x)));
  }
  delete(key: string): Promise<boolean> {
    return this.store.delete(this.k(key));
  }
  wait(keys: string | readonly string[], timeoutMs?: number): Promise<void> {
    return this.store.wait(typeof keys === 'string' ? this.k(keys) : keys.map((x) => this.k(x)), timeoutMs);
  }
  /** Closing a view does not close the underlying store. */
  async close(): Promise<void> {}
}
