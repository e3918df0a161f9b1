import * as net from 'node:net';
import { type Store, type StoreAddress, StoreOp, StoreStatus } from './store.js';

/** Options of {@link TcpStoreClient.connect}. */
export interface TcpStoreClientOptions {
  /** Default wait for `get`/`wait`, and how long `connect` retries a server that is not up yet. Default 300 000 ms. */
  timeoutMs?: number;
}

interface Pending {
  resolve(r: { status: number; body: Buffer }): void;
  reject(e: Error): void;
}

function toBuffer(v: Uint8Array | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Encode one store request (exported for protocol tests and other clients). */
export function encodeStoreRequest(
  op: number,
  key: string,
  value: Uint8Array = new Uint8Array(0),
  timeoutMs = 0,
): Buffer {
  const k = Buffer.from(key, 'utf8');
  const out = Buffer.allocUnsafe(1 + 4 + k.length + 4 + value.length + 4);
  let o = out.writeUInt8(op, 0);
  o = out.writeUInt32LE(k.length, o);
  out.set(k, o);
  o += k.length;
  o = out.writeUInt32LE(value.length, o);
  out.set(value, o);
  o += value.length;
  out.writeUInt32LE(Math.max(0, Math.min(0xffffffff, Math.floor(timeoutMs))), o);
  return out;
}

/**
 * Asynchronous client of the TCP store (one connection, requests answered in order). The JS client
 * is meant for the launcher, tests and bookkeeping; collective backends talk to the server directly.
 */
export class TcpStoreClient implements Store {
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: Pending[] = [];
  private closedError: Error | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly where: string,
    /** Default timeout of `get` and `wait`. */
    readonly timeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const gone = (err?: Error) => {
      this.closedError ??= new Error(`TCP store connection to ${where} closed${err ? `: ${err.message}` : ''}`);
      for (const p of this.queue.splice(0)) p.reject(this.closedError);
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
  }

  /**
   * Connect and authenticate. Retries a refused connection until `timeoutMs` (ranks may start before
   * the server); a wrong secret fails at once with an error saying so.
   */
  static async connect(addr: StoreAddress, opts: TcpStoreClientOptions = {}): Promise<TcpStoreClient> {
    const timeoutMs = opts.timeoutMs ?? 300_000;
    const where = `${addr.host}:${addr.port}`;
    const deadline = Date.now() + timeoutMs;
    let delay = 50;
    let lastErr: Error | null = null;
    for (;;) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect({ host: addr.host, port: addr.port });
          s.once('connect', () => {
            s.removeListener('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
        socket.setNoDelay(true);
        const client = new TcpStoreClient(socket, where, timeoutMs);
        const r = await client.request(StoreOp.AUTH, addr.secret);
        if (r.status !== StoreStatus.OK) {
          socket.destroy();
          throw new AuthError(
            `TCP store at ${where} refused the secret (status ${r.status}): ` +
              'OMNITRAIN_STORE_SECRET differs from the one the store was started with',
          );
        }
        return client;
      } catch (e) {
        if (e instanceof AuthError) throw e;
        lastErr = e as Error;
        if (Date.now() + delay > deadline) {
          throw new Error(`TCP store at ${where} not reachable within ${timeoutMs} ms: ${lastErr.message}`);
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(1000, delay * 2);
      }
    }
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32LE(1);
      if (this.buf.length < 5 + len) return;
      const status = this.buf.readUInt8(0);
      const body = Buffer.from(this.buf.subarray(5, 5 + len));
      this.buf = this.buf.subarray(5 + len);
      const p = this.queue.shift();
      p?.resolve({ status, body });
    }
  }

  /** Send one raw request and await its response (status + body). */
  request(
    op: number,
    key: string,
    value?: Uint8Array | string,
    timeoutMs = 0,
  ): Promise<{ status: number; body: Buffer }> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      this.socket.write(encodeStoreRequest(op, key, value === undefined ? undefined : toBuffer(value), timeoutMs));
    });
  }

  private fail(what: string, key: string, r: { status: number; body: Buffer }): never {
    const msg = r.body.toString('utf8');
    if (r.status === StoreStatus.TIMEOUT)
      throw new Error(`TCP store ${this.where}: ${what} '${key}' timed out: ${msg}`);
    throw new Error(`TCP store ${this.where}: ${what} '${key}' failed (status ${r.status}): ${msg}`);
  }

  async set(key: string, value: Uint8Array | string): Promise<void> {
    const r = await this.request(StoreOp.SET, key, value);
    if (r.status !== StoreStatus.OK) this.fail('set', key, r);
  }

  async get(key: string, timeoutMs = this.timeoutMs): Promise<Uint8Array> {
    const r = await this.request(StoreOp.GET, key, undefined, timeoutMs);
    if (r.status !== StoreStatus.OK) this.fail('get', key, r);
    return new Uint8Array(r.body.buffer, r.body.byteOffset, r.body.byteLength);
  }

  async add(key: string, delta: number | bigint): Promise<bigint> {
    const v = Buffer.allocUnsafe(8);
    v.writeBigInt64LE(BigInt(delta), 0);
    const r = await this.request(StoreOp.ADD, key, v);
    if (r.status !== StoreStatus.OK) this.fail('add', key, r);
    return r.body.readBigInt64LE(0);
  }

  async check(keys: string | readonly string[]): Promise<boolean> {
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      const r = await this.request(StoreOp.CHECK, key);
      if (r.status !== StoreStatus.OK) this.fail('check', key, r);
      if (r.body[0] !== 1) return false;
    }
    return true;
  }

  async delete(key: string): Promise<boolean> {
    const r = await this.request(StoreOp.DELETE, key);
    if (r.status !== StoreStatus.OK) this.fail('delete', key, r);
    return r.body[0] === 1;
  }

  async wait(keys: string | readonly string[], timeoutMs = this.timeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      const r = await this.request(StoreOp.WAIT, key, undefined, Math.max(0, deadline - Date.now()));
      if (r.status !== StoreStatus.OK) this.fail('wait', key, r);
    }
  }

  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }
}

class AuthError extends Error {}
