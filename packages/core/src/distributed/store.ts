/** Where a TCP store server listens, and the shared secret its clients must present. */
export interface StoreAddress {
  host: string;
  port: number;
  secret: string;
}

/**
 * A key-value rendezvous store. All methods are asynchronous; `get` and `wait` block (up to
 * `timeoutMs`, default the store's own timeout) until the key exists.
 */
export interface Store {
  set(key: string, value: Uint8Array | string): Promise<void>;
  /** The value of `key`, waiting until it exists; rejects with a timeout error naming the key. */
  get(key: string, timeoutMs?: number): Promise<Uint8Array>;
  /** Add `delta` to the i64 counter at `key` (missing = 0) and return the new value. */
  add(key: string, delta: number | bigint): Promise<bigint>;
  /** True when every key exists. */
  check(keys: string | readonly string[]): Promise<boolean>;
  /** True when the key existed and was deleted. */
  delete(key: string): Promise<boolean>;
  /** Wait until every key exists; rejects with a timeout error naming the missing keys. */
  wait(keys: string | readonly string[], timeoutMs?: number): Promise<void>;
  /** Release connections / handles. */
  close(): Promise<void>;
}

/** Store wire protocol op codes (see TCP store docs). */
export const StoreOp = { AUTH: 1, SET: 2, GET: 3, ADD: 4, CHECK: 5, DELETE: 6, WAIT: 7 } as const;
/** Store wire protocol response status codes. */
export const StoreStatus = { OK: 0, TIMEOUT: 1, ERROR: 2, AUTH_FAILED: 3 } as const;
