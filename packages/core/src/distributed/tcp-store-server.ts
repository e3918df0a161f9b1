import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { Worker } from 'node:worker_threads';

/** Options of a TCP store server. */
export interface TcpStoreServerOptions {
  /** Interface to bind: `127.0.0.1` (default) for one machine, `0.0.0.0` for several. */
  host?: string;
  /** Port to listen on; `0` picks a free one (read it back from `.port`). */
  port: number;
  /** Shared secret every client must present first (AUTH). */
  secret: string;
}

/** Events the self-contained server reports. */
type ServerEvent = { type: 'listening'; port: number } | { type: 'error'; message: string };

/** Handle of a running self-contained server. */
interface ServerHandle {
  close(cb: () => void): void;
  clear(): void;
  keys(): number;
}

/**
 * The whole server, written as one self-contained function (no imports, no outer references) so that
 * it can also run inside a worker thread from its own source text (`storeServerMain.toString()`).
 * Wire protocol: see DISTRIBUTED-SPEC / `StoreOp`.
 */
function storeServerMain(
  netMod: any,
  cryptoMod: any,
  opts: { host: string; port: number; secret: string },
  report: (ev: ServerEvent) => void,
): ServerHandle {
  const OK = 0;
  const TIMEOUT = 1;
  const ERROR = 2;
  const AUTH_FAILED = 3;
  const MAX_KEY = 64 * 1024;
  const MAX_VALUE = 256 * 1024 * 1024;
  const PREAUTH_MAX = 4096;
  const AUTH_DEADLINE_MS = 10_000;
  const secretHash = cryptoMod.createHash('sha256').update(opts.secret, 'utf8').digest();
  const data = new Map<string, Buffer>();
  const waiters = new Map<string, Set<() => void>>();
  const sockets = new Set<any>();

  function notify(key: string): void {
    const set = waiters.get(key);
    if (!set) return;
    waiters.delete(key);
    for (const fn of set) fn();
  }

  function response(status: number, body?: Buffer | Uint8Array): Buffer {
    const b = body ?? Buffer.alloc(0);
    const out = Buffer.allocUnsafe(5 + b.length);
    out.writeUInt8(status, 0);
    out.writeUInt32LE(b.length, 1);
    out.set(b, 5);
    return out;
  }
  function errorResponse(msg: string): Buffer {
    return response(ERROR, Buffer.from(msg, 'utf8'));
  }

  const server = netMod.createServer((socket: any) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let buf: Buffer = Buffer.alloc(0);
    let authed = false;
    let busy = false;
    let closed = false;
    const authTimer = setTimeout(() => {
      if (!authed) socket.destroy();
    }, AUTH_DEADLINE_MS);
    authTimer.unref?.();
    const cleanups = new Set<() => void>();

    function send(b: Buffer): void {
      if (!closed) socket.write(b);
    }
    function refuse(): void {
      if (closed) return;
      closed = true;
      socket.end(response(AUTH_FAILED, Buffer.from('authentication failed', 'utf8')));
      setTimeout(() => socket.destroy(), 100).unref?.();
    }

    function waitFor(key: string, timeoutMs: number, done: (found: boolean) => void) {
      if (data.has(key)) return done(true);
      if (!(timeoutMs > 0)) return done(false);
      let set = waiters.get(key);
      if (!set) {
        set = new Set();
        waiters.set(key, set);
      }
      const s = set;
      let timer: any = null;
      const cleanup = (): void => {
        if (timer) clearTimeout(timer);
        s.delete(fire);
        if (s.size === 0 && waiters.get(key) === s) waiters.delete(key);
        cleanups.delete(cleanup);
      };
      const fire = (): void => {
        cleanup();
        done(true);
      };
      timer = setTimeout(() => {
        cleanup();
        done(data.has(key));
      }, timeoutMs);
      s.add(fire);
      cleanups.add(cleanup);
    }

    function handle(op: number, key: string, value: Buffer, timeoutMs: number, finish: (b: Buffer) => void) {
      if (!authed) {
        if (op !== 1) return refuse();
        const h = cryptoMod.createHash('sha256').update(key, 'utf8').digest();
        if (!cryptoMod.timingSafeEqual(h, secretHash)) return refuse();
        authed = true;
        clearTimeout(authTimer);
        return finish(response(OK));
      }
      switch (op) {
        case 1:
          return finish(response(OK));
        case 2:
          data.set(key, Buffer.from(value));
          notify(key);
          return finish(response(OK));
        case 3:
          return waitFor(key, timeoutMs, (found) =>
            finish(
              found
                ? response(OK, data.get(key))
                : response(TIMEOUT, Buffer.from(`timed out after ${timeoutMs} ms waiting for key '${key}'`)),
            ),
          );
        case 4: {
          if (value.length !== 8)
            return finish(errorResponse(`ADD '${key}': delta must be 8 bytes, got ${value.length}`));
          const cur = data.get(key);
          let base = 0n;
          if (cur) {
            if (cur.length !== 8) return finish(errorResponse(`ADD '${key}': existing value is not an i64 counter`));
            base = cur.readBigInt64LE(0);
          }
          const out = Buffer.allocUnsafe(8);
          out.writeBigInt64LE(BigInt.asIntN(64, base + value.readBigInt64LE(0)), 0);
          data.set(key, out);
          notify(key);
          return finish(response(OK, out));
        }
        case 5:
          return finish(response(OK, Buffer.from([data.has(key) ? 1 : 0])));
        case 6:
          return finish(response(OK, Buffer.from([data.delete(key) ? 1 : 0])));
        case 7:
          return waitFor(key, timeoutMs, (found) =>
            finish(
              found
                ? response(OK)
                : response(TIMEOUT, Buffer.from(`timed out after ${timeoutMs} ms waiting for key '${key}'`)),
            ),
          );
        default:
          return finish(errorResponse(`unknown store op ${op}`));
      }
    }

    function pump() {
      while (!busy && !closed) {
        if (buf.length < 5) return;
        const op = buf.readUInt8(0);
        const keyLen = buf.readUInt32LE(1);
        const maxKey = authed ? MAX_KEY : PREAUTH_MAX;
        if (keyLen > maxKey) {
          if (!authed) return refuse();
          send(errorResponse(`key too long (${keyLen} bytes, max ${maxKey})`));
          closed = true;
          socket.end();
          return;
        }
        if (buf.length < 5 + keyLen + 4) return;
        const valueLen = buf.readUInt32LE(5 + keyLen);
        const maxValue = authed ? MAX_VALUE : PREAUTH_MAX;
        if (valueLen > maxValue) {
          if (!authed) return refuse();
          send(errorResponse(`value too long (${valueLen} bytes, max ${maxValue})`));
          closed = true;
          socket.end();
          return;
        }
        const total = 5 + keyLen + 4 + valueLen + 4;
        if (buf.length < total) return;
        const key = buf.toString('utf8', 5, 5 + keyLen);
        const value = buf.subarray(9 + keyLen, 9 + keyLen + valueLen);
        const timeoutMs = buf.readUInt32LE(9 + keyLen + valueLen);
        buf = buf.subarray(total);
        busy = true;
        let sync = true;
        let again = false;
        handle(op, key, value, timeoutMs, (b) => {
          send(b);
          busy = false;
          if (sync) again = true;
          else pump();
        });
        sync = false;
        if (!again && busy) return;
      }
    }

    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      pump();
    });
    const onGone = (): void => {
      closed = true;
      clearTimeout(authTimer);
      for (const c of [...cleanups]) c();
      sockets.delete(socket);
    };
    socket.on('close', onGone);
    socket.on('error', () => {});
  });

  server.on('error', (err: any) => {
    const where = `${opts.host}:${opts.port}`;
    const message =
      err && err.code === 'EADDRINUSE'
        ? `TCP store: port ${opts.port} on ${opts.host} is already in use (another job or launcher?); ` +
          'choose another with --master-port or MASTER_PORT (0 picks a free port)'
        : `TCP store: cannot listen on ${where}: ${err?.message ?? err}`;
    report({ type: 'error', message });
  });
  server.listen({ host: opts.host, port: opts.port, exclusive: true }, () => {
    report({ type: 'listening', port: server.address().port });
  });

  return {
    close(cb: () => void): void {
      for (const s of sockets) s.destroy();
      for (const k of [...waiters.keys()]) waiters.delete(k);
      server.close(() => cb());
    },
    clear(): void {
      data.clear();
    },
    keys(): number {
      return data.size;
    },
  };
}

/**
 * The TCP store server on the calling thread's event loop (the launcher uses this: its loop never
 * blocks). Ranks without a launcher use {@link startStoreServerInWorker} instead.
 */
export class TcpStoreServer {
  private constructor(
    private readonly handle: ServerHandle,
    /** The port actually bound (useful with `port: 0`). */
    readonly port: number,
    /** The interface bound. */
    readonly host: string,
  ) {}

  /** Start listening; rejects with a clear message when the port is busy. */
  static async start(opts: TcpStoreServerOptions): Promise<TcpStoreServer> {
    const host = opts.host ?? '127.0.0.1';
    checkSecret(opts.secret);
    return new Promise((resolve, reject) => {
      let handle: ServerHandle | null = null;
      let settled = false;
      handle = storeServerMain(net, crypto, { host, port: opts.port, secret: opts.secret }, (ev) => {
        if (settled) return;
        settled = true;
        if (ev.type === 'listening') resolve(new TcpStoreServer(handle!, ev.port, host));
        else reject(new Error(ev.message));
      });
    });
  }

  /** Drop every key (the launcher does this before restarting a group). */
  clear(): void {
    this.handle.clear();
  }

  /** Number of keys held. */
  get size(): number {
    return this.handle.keys();
  }

  /** Stop listening and drop all connections. */
  close(): Promise<void> {
    return new Promise((resolve) => this.handle.close(resolve));
  }
}

/** A TCP store server running in a worker thread (so that a rank blocked in a collective still serves). */
export interface WorkerStoreServer {
  readonly port: number;
  readonly host: string;
  /** Terminate the worker (and so the server). */
  close(): Promise<void>;
}

/**
 * Start a TCP store server in a worker thread and block (Atomics.wait) until it listens or fails.
 * Used by rank 0 when no launcher hosts the store. Throws the server's error (e.g. busy port).
 */
export function startStoreServerInWorker(opts: TcpStoreServerOptions & { startTimeoutMs?: number }): WorkerStoreServer {
  const host = opts.host ?? '127.0.0.1';
  checkSecret(opts.secret);
  const sab = new SharedArrayBuffer(8 + 4096);
  // Self-contained script: works whether the worker parses it as CommonJS or (inherited --input-type) ESM.
  const code = `
const load = (m) => process.getBuiltinModule(m);
const { workerData } = load('node:worker_threads');
const flag = new Int32Array(workerData.sab, 0, 2);
const msg = new Uint8Array(workerData.sab, 8);
const signal = (state, text, port) => {
  if (Atomics.load(flag, 0) !== 0) return;
  if (state === 1) Atomics.store(flag, 1, port);
  else { const b = Buffer.from(text, 'utf8').subarray(0, msg.length - 1); msg.set(b); Atomics.store(flag, 1, b.length); }
  Atomics.store(flag, 0, state);
  Atomics.notify(flag, 0);
};
try {
  const main = (${storeServerMain.toString()});
  main(load('node:net'), load('node:crypto'), workerData.opts, (ev) =>
    ev.type === 'listening' ? signal(1, '', ev.port) : signal(2, ev.message, 0));
} catch (e) {
  signal(2, 'TCP store server thread failed: ' + (e && e.stack || e), 0);
}`;
  const worker = new Worker(code, {
    eval: true,
    execArgv: [],
    workerData: { sab, opts: { host, port: opts.port, secret: opts.secret } },
  });
  worker.unref();
  let workerError: unknown = null;
  worker.on('error', (e) => {
    workerError = e;
  });
  const flag = new Int32Array(sab, 0, 2);
  const timeout = opts.startTimeoutMs ?? 30_000;
  const res = Atomics.wait(flag, 0, 0, timeout);
  const state = Atomics.load(flag, 0);
  if (state === 1) {
    const port = Atomics.load(flag, 1);
    return {
      port,
      host,
      close: async () => {
        await worker.terminate();
      },
    };
  }
  void worker.terminate();
  if (state === 2) {
    const len = Atomics.load(flag, 1);
    throw new Error(Buffer.from(new Uint8Array(sab, 8, len)).toString('utf8'));
  }
  throw new Error(
    `TCP store: the server thread did not start listening on ${host}:${opts.port} within ${timeout} ms (${res})` +
      (workerError ? `: ${String(workerError)}` : ''),
  );
}

function checkSecret(secret: string): void {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new Error('TCP store: the shared secret is empty; set OMNITRAIN_STORE_SECRET (the launcher does this)');
  }
}
