import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { StoreAddress } from './store.js';
import { StoreOp, StoreStatus } from './store.js';
import { encodeStoreRequest } from './tcp-store-client.js';

// Worker: owns the socket; forwards raw request frames and answers each with the raw response frame.
const WORKER_SOURCE = `
const load = (m) => process.getBuiltinModule(m);
const { workerData } = load('node:worker_threads');
const net = load('node:net');
const flag = new Int32Array(workerData.sab);
const port = workerData.port;
let buf = Buffer.alloc(0);
let socket = null;
let gen = 0;
port.on('message', (m) => {
  if (m.type === 'connect') {
    if (socket) { socket.removeAllListeners(); socket.on('error', () => {}); socket.destroy(); }
    buf = Buffer.alloc(0);
    gen = m.gen;
    const g = gen;
    const reply = (msg) => { msg.gen = g; port.postMessage(msg); Atomics.add(flag, 0, 1); Atomics.notify(flag, 0); };
    socket = net.connect({ host: m.host, port: m.port });
    socket.setNoDelay(true);
    socket.once('connect', () => reply({ ok: true }));
    socket.on('error', (e) => reply({ ok: false, error: e.message, code: e.code }));
    socket.on('close', () => reply({ ok: false, error: 'connection closed' }));
    socket.on('data', (c) => {
      buf = buf.length ? Buffer.concat([buf, c]) : c;
      while (buf.length >= 5) {
        const len = buf.readUInt32LE(1);
        if (buf.length < 5 + len) return;
        const frame = Buffer.from(buf.subarray(0, 5 + len));
        buf = buf.subarray(5 + len);
        reply({ ok: true, frame });
      }
    });
  } else if (m.type === 'request') {
    socket.write(Buffer.from(m.bytes));
  } else if (m.type === 'close') {
    if (socket) socket.destroy();
    port.close();
  }
});`;

/**
 * A blocking TCP store client for ordinary synchronous code (e.g. inside a process-group backend's
 * `create`): a worker thread owns the socket and this thread waits with `Atomics.wait`. Same protocol
 * and semantics as {@link TcpStoreClient}; do not use it on a thread that must keep serving events.
 */
export class SyncTcpStoreClient {
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private gen = 0;
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private closed = false;
  private readonly where: string;

  /**
   * Connect and authenticate, retrying a refused connection until `timeoutMs` (default 300 000 ms,
   * also the default wait of `get`/`wait`). A wrong secret throws at once.
   */
  constructor(
    addr: StoreAddress,
    readonly timeoutMs = 300_000,
  ) {
    this.where = `${addr.host}:${addr.port}`;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: { sab: this.flag.buffer, port: port2 },
      transferList: [port2],
    });
    this.worker.unref();
    const deadline = Date.now() + timeoutMs;
    let delay = 50;
    for (;;) {
      this.restartSocket(addr);
      const r = this.next(Math.max(1, deadline - Date.now()));
      if (r?.ok) break;
      const why = r ? r.error : 'no answer';
      if (Date.now() + delay > deadline) {
        this.close();
        throw new Error(`TCP store at ${this.where} not reachable within ${timeoutMs} ms: ${why}`);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delay);
      delay = Math.min(1000, delay * 2);
    }
    const auth = this.request(StoreOp.AUTH, addr.secret);
    if (auth.status !== StoreStatus.OK) {
      this.close();
      throw new Error(
        `TCP store at ${this.where} refused the secret (status ${auth.status}): ` +
          'OMNITRAIN_STORE_SECRET differs from the one the store was started with',
      );
    }
  }

  private restartSocket(addr: StoreAddress): void {
    // Messages of an earlier socket (a failed connect's 'error' and 'close') carry an older gen.
    this.gen++;
    this.port.postMessage({ type: 'connect', host: addr.host, port: addr.port, gen: this.gen });
  }

  /** Block until the worker's next message about the current socket (or `ms` pass). */
  private next(ms: number): { ok: boolean; error?: string; frame?: Uint8Array } | null {
    const deadline = Date.now() + ms;
    for (;;) {
      // The worker posts before it bumps the flag: a message is receivable once the flag moved.
      const seen = Atomics.load(this.flag, 0);
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
        if (m.message.gen === this.gen) return m.message;
      }
      const left = deadline - Date.now();
      if (left <= 0) return null;
      Atomics.wait(this.flag, 0, seen, left);
    }
  }

  /** Send one raw request and block for its response. */
  request(op: number, key: string, value?: Uint8Array | string, timeoutMs = 0): { status: number; body: Buffer } {
    if (this.closed) throw new Error(`TCP store client for ${this.where} is closed`);
    const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    this.port.postMessage({ type: 'request', bytes: encodeStoreRequest(op, key, v, timeoutMs) });
    const m = this.next(timeoutMs + 30_000);
    if (!m) throw new Error(`TCP store ${this.where}: no answer to op ${op} on '${key}'`);
    if (!m.ok || !m.frame) throw new Error(`TCP store connection to ${this.where} lost: ${m.error}`);
    const f = Buffer.from(m.frame.buffer, m.frame.byteOffset, m.frame.byteLength);
    return { status: f.readUInt8(0), body: f.subarray(5) };
  }

  private check200(what: string, key: string, r: { status: number; body: Buffer }): void {
    if (r.status === StoreStatus.OK) return;
    const msg = r.body.toString('utf8');
    if (r.status === StoreStatus.TIMEOUT)
      throw new Error(`TCP store ${this.where}: ${what} '${key}' timed out: ${msg}`);
    throw new Error(`TCP store ${this.where}: ${what} '${key}' failed (status ${r.status}): ${msg}`);
  }

  set(key: string, value: Uint8Array | string): void {
    this.check200('set', key, this.request(StoreOp.SET, key, value));
  }

  /** The value of `key`, blocking until it exists or `timeoutMs` passes. */
  get(key: string, timeoutMs = this.timeoutMs): Uint8Array {
    const r = this.request(StoreOp.GET, key, undefined, timeoutMs);
    this.check200('get', key, r);
    return new Uint8Array(r.body);
  }

  add(key: string, delta: number | bigint): bigint {
    const v = Buffer.allocUnsafe(8);
    v.writeBigInt64LE(BigInt(delta), 0);
    const r = this.request(StoreOp.ADD, key, v);
    this.check200('add', key, r);
    return r.body.readBigInt64LE(0);
  }

  check(keys: string | readonly string[]): boolean {
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      const r = this.request(StoreOp.CHECK, key);
      this.check200('check', key, r);
      if (r.body[0] !== 1) return false;
    }
    return true;
  }

  delete(key: string): boolean {
    const r = this.request(StoreOp.DELETE, key);
    this.check200('delete', key, r);
    return r.body[0] === 1;
  }

  wait(keys: string | readonly string[], timeoutMs = this.timeoutMs): void {
    const deadline = Date.now() + timeoutMs;
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      this.check200('wait', key, this.request(StoreOp.WAIT, key, undefined, Math.max(0, deadline - Date.now())));
    }
  }

  /** Close the connection and stop the worker. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port.postMessage({ type: 'close' });
    this.port.close();
    void this.worker.terminate();
  }
}
