import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  encodeStoreRequest,
  FileStore,
  PrefixStore,
  type Store,
  StoreOp,
  StoreStatus,
  SyncTcpStoreClient,
  startStoreServerInWorker,
  TcpStoreClient,
  TcpStoreServer,
} from '@omnitrain/core';
import { afterEach, describe, expect, it } from 'vitest';

const SECRET = 'test-secret-123';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(): Promise<TcpStoreServer> {
  const s = await TcpStoreServer.start({ port: 0, secret: SECRET });
  cleanups.push(() => s.close());
  return s;
}
async function client(port: number, secret = SECRET): Promise<TcpStoreClient> {
  const c = await TcpStoreClient.connect({ host: '127.0.0.1', port, secret }, { timeoutMs: 5000 });
  cleanups.push(() => c.close());
  return c;
}

/** Raw socket exchange: send bytes, collect everything until the server closes or `ms` passes. */
function raw(port: number, payload: Buffer, ms = 1500): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let closed = false;
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {});
    s.on('close', () => {
      closed = true;
      resolve({ data: Buffer.concat(chunks), closed });
    });
    s.on('connect', () => s.write(payload));
    setTimeout(() => {
      s.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    }, ms);
  });
}

/** `writer` must be another connection: requests on one TCP connection are answered in order. */
async function exerciseStore(store: Store, writer: Store): Promise<void> {
  await store.set('a', 'hello');
  expect(Buffer.from(await store.get('a')).toString()).toBe('hello');
  expect(await store.check('a')).toBe(true);
  expect(await store.check(['a', 'b'])).toBe(false);
  expect(await store.add('n', 5)).toBe(5n);
  expect(await store.add('n', -7)).toBe(-2n);
  expect(await store.add('n', 2n ** 40n)).toBe(2n ** 40n - 2n);
  expect(await store.delete('a')).toBe(true);
  expect(await store.delete('a')).toBe(false);
  expect(await store.check('a')).toBe(false);
  // get/wait block until another writer sets the key.
  const pending = store.get('late', 5000);
  const waiting = store.wait(['late', 'n'], 5000);
  await new Promise((r) => setTimeout(r, 50));
  // binary values survive
  await writer.set('late', new Uint8Array([0, 255, 1]));
  expect([...(await pending)]).toEqual([0, 255, 1]);
  await waiting;
  // bounded waits
  const t0 = Date.now();
  await expect(store.get('never', 200)).rejects.toThrow(/never.*timed out|timed out.*never/);
  await expect(store.wait('never', 100)).rejects.toThrow(/timed out/);
  expect(Date.now() - t0).toBeLessThan(2500);
}

describe('TCP store (wire protocol)', () => {
  it('set/get/add/check/delete/wait with blocking gets and bounded waits', async () => {
    const s = await server();
    await exerciseStore(await client(s.port), await client(s.port));
  });

  it('a second client sees the first one’s keys and wakes a blocked get', async () => {
    const s = await server();
    const a = await client(s.port);
    const b = await client(s.port);
    const got = b.get('k', 5000);
    await a.set('k', 'v');
    expect(Buffer.from(await got).toString()).toBe('v');
    expect(await b.add('ctr', 1)).toBe(1n);
    expect(await a.add('ctr', 1)).toBe(2n);
  });

  it('speaks the documented byte layout', async () => {
    const s = await server();
    const auth = encodeStoreRequest(StoreOp.AUTH, SECRET);
    const set = encodeStoreRequest(StoreOp.SET, 'key', Buffer.from('val'));
    const get = encodeStoreRequest(StoreOp.GET, 'key', undefined, 1000);
    const add = Buffer.alloc(8);
    add.writeBigInt64LE(3n);
    const addReq = encodeStoreRequest(StoreOp.ADD, 'c', add);
    const check = encodeStoreRequest(StoreOp.CHECK, 'nope');
    const wait = encodeStoreRequest(StoreOp.WAIT, 'nope', undefined, 50);
    expect([...set.subarray(0, 9)]).toEqual([2, 3, 0, 0, 0, 0x6b, 0x65, 0x79, 3]);
    const { data } = await raw(s.port, Buffer.concat([auth, set, get, addReq, check, wait]), 600);
    const expected = Buffer.concat([
      Buffer.from([StoreStatus.OK, 0, 0, 0, 0]),
      Buffer.from([StoreStatus.OK, 0, 0, 0, 0]),
      Buffer.from([StoreStatus.OK, 3, 0, 0, 0]),
      Buffer.from('val'),
      Buffer.from([StoreStatus.OK, 8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from([StoreStatus.OK, 1, 0, 0, 0, 0]),
    ]);
    expect([...data.subarray(0, expected.length)]).toEqual([...expected]);
    expect(data[expected.length]).toBe(StoreStatus.TIMEOUT);
  });

  it('refuses a wrong secret, and any request before AUTH, and closes the connection', async () => {
    const s = await server();
    await expect(client(s.port, 'wrong')).rejects.toThrow(/refused the secret/);
    const r1 = await raw(s.port, encodeStoreRequest(StoreOp.AUTH, 'wrong'));
    expect(r1.data[0]).toBe(StoreStatus.AUTH_FAILED);
    expect(r1.closed).toBe(true);
    const r2 = await raw(s.port, encodeStoreRequest(StoreOp.GET, 'x', undefined, 10));
    expect(r2.data[0]).toBe(StoreStatus.AUTH_FAILED);
    expect(r2.closed).toBe(true);
    // and nothing a refused peer sent was stored
    const r3 = await raw(s.port, Buffer.concat([encodeStoreRequest(StoreOp.SET, 'evil', Buffer.from('1'))]));
    expect(r3.data[0]).toBe(StoreStatus.AUTH_FAILED);
    const c = await client(s.port);
    expect(await c.check('evil')).toBe(false);
  });

  it('a busy port is a clear error', async () => {
    const s = await server();
    await expect(TcpStoreServer.start({ port: s.port, secret: SECRET })).rejects.toThrow(
      new RegExp(`port ${s.port} .*already in use.*--master-port`),
    );
    expect(() => startStoreServerInWorker({ port: s.port, secret: SECRET })).toThrow(/already in use/);
  });

  it('an empty secret is rejected', async () => {
    await expect(TcpStoreServer.start({ port: 0, secret: '' })).rejects.toThrow(/OMNITRAIN_STORE_SECRET/);
  });

  it('a server in a worker thread serves while this thread is blocked', async () => {
    const w = startStoreServerInWorker({ port: 0, secret: SECRET });
    cleanups.push(() => w.close());
    expect(w.port).toBeGreaterThan(0);
    const c = await client(w.port);
    await exerciseStore(c, await client(w.port));
    // A get issued before this thread blocks is answered by the worker meanwhile (visible right after).
    const other = await client(w.port);
    const got = c.get('from-other', 3000);
    await other.set('from-other', 'x');
    const end = Date.now() + 200;
    while (Date.now() < end) {}
    expect(Buffer.from(await got).toString()).toBe('x');
  });

  it('connect retries until the server is up, and gives up with a clear error', async () => {
    const probe = await TcpStoreServer.start({ port: 0, secret: SECRET });
    const port = probe.port;
    await probe.close();
    const pending = TcpStoreClient.connect({ host: '127.0.0.1', port, secret: SECRET }, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    const s = await TcpStoreServer.start({ port, secret: SECRET });
    cleanups.push(() => s.close());
    const c = await pending;
    cleanups.push(() => c.close());
    await c.set('up', '1');
    await expect(
      TcpStoreClient.connect({ host: '127.0.0.1', port: 1, secret: SECRET }, { timeoutMs: 300 }),
    ).rejects.toThrow(/not reachable within 300 ms/);
  });

  it('clear() drops every key (used by the launcher between restarts)', async () => {
    const s = await server();
    const c = await client(s.port);
    await c.set('a', '1');
    expect(s.size).toBe(1);
    s.clear();
    expect(await c.check('a')).toBe(false);
  });
});

describe('SyncTcpStoreClient (blocking, for synchronous code)', () => {
  it('does every op synchronously against a server in a worker thread', () => {
    const w = startStoreServerInWorker({ port: 0, secret: SECRET });
    cleanups.push(() => w.close());
    const a = new SyncTcpStoreClient({ host: '127.0.0.1', port: w.port, secret: SECRET }, 5000);
    const b = new SyncTcpStoreClient({ host: '127.0.0.1', port: w.port, secret: SECRET }, 5000);
    cleanups.push(() => a.close());
    cleanups.push(() => b.close());
    a.set('k', 'v');
    expect(Buffer.from(b.get('k')).toString()).toBe('v');
    expect(b.add('n', 3)).toBe(3n);
    expect(a.add('n', -1)).toBe(2n);
    expect(a.check(['k', 'n'])).toBe(true);
    expect(a.check('zz')).toBe(false);
    expect(a.delete('k')).toBe(true);
    expect(a.delete('k')).toBe(false);
    const big = new Uint8Array(3 << 20).map((_, i) => i % 251);
    a.set('big', big);
    expect(Buffer.compare(Buffer.from(b.get('big')), Buffer.from(big))).toBe(0);
    const t0 = Date.now();
    expect(() => a.get('never', 150)).toThrow(/get 'never' timed out/);
    expect(() => a.wait(['n', 'never'], 150)).toThrow(/wait 'never' timed out/);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('refuses a wrong secret and reports an unreachable store', () => {
    const w = startStoreServerInWorker({ port: 0, secret: SECRET });
    cleanups.push(() => w.close());
    expect(() => new SyncTcpStoreClient({ host: '127.0.0.1', port: w.port, secret: 'bad' }, 2000)).toThrow(
      /refused the secret/,
    );
    expect(() => new SyncTcpStoreClient({ host: '127.0.0.1', port: 1, secret: SECRET }, 300)).toThrow(
      /not reachable within 300 ms/,
    );
  });
});

describe('FileStore and PrefixStore', () => {
  it('FileStore implements the same semantics on a directory', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitrain-filestore-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    await exerciseStore(new FileStore(dir), new FileStore(dir));
  });

  it('FileStore counters are atomic under concurrent adds', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'omnitrain-filestore-'));
    cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
    const a = new FileStore(dir);
    const b = new FileStore(dir);
    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).add('c', 1)));
    expect(await a.add('c', 0)).toBe(20n);
  });

  it('PrefixStore keeps groups apart', async () => {
    const s = await server();
    const c = await client(s.port);
    const g1 = new PrefixStore('g1', c);
    const g2 = new PrefixStore('g2', c);
    await g1.set('k', 'one');
    await g2.set('k', 'two');
    expect(Buffer.from(await g1.get('k')).toString()).toBe('one');
    expect(Buffer.from(await c.get('g2/k')).toString()).toBe('two');
    expect(await g1.check(['k'])).toBe(true);
    expect(await new PrefixStore('g3', c).check('k')).toBe(false);
    await exerciseStore(new PrefixStore('g4', c), new PrefixStore('g4', await client(s.port)));
  });
});
