import { randomBytes } from 'node:crypto';
import { getRegistry, type Registry } from '../registry.js';
import { DeviceMesh, type DeviceMeshConfig } from './device-mesh.js';
import type { ProcessGroup, ProcessGroupBackend } from './process-group.js';
import type { StoreAddress } from './store.js';
import { SyncTcpStoreClient } from './sync-store-client.js';
import { TcpStoreClient } from './tcp-store-client.js';
import { startStoreServerInWorker, type WorkerStoreServer } from './tcp-store-server.js';

/** What the launcher (`omnitrain launch`) tells each rank through its environment. */
export interface DistributedEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** `OMNITRAIN_STORE_SECRET`, or undefined. */
  secret: string | undefined;
  /** True when a launcher hosts the store (`OMNITRAIN_STORE_HOSTED=1`). */
  storeHosted: boolean;
  /** How many times the launcher restarted the group (`OMNITRAIN_RESTART_COUNT`, default 0). */
  restartCount: number;
}

function intEnv(env: Record<string, string | undefined>, name: string, dflt: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`environment variable ${name}=${JSON.stringify(v)} is not a non-negative integer`);
  return n;
}

/** Read RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT, OMNITRAIN_STORE_SECRET. */
export function distributedEnv(env: Record<string, string | undefined> = process.env): DistributedEnv {
  const rank = intEnv(env, 'RANK', 0);
  const worldSize = intEnv(env, 'WORLD_SIZE', 1);
  return {
    rank,
    worldSize,
    localRank: intEnv(env, 'LOCAL_RANK', rank),
    localWorldSize: intEnv(env, 'LOCAL_WORLD_SIZE', worldSize),
    nodeRank: intEnv(env, 'NODE_RANK', 0),
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: intEnv(env, 'MASTER_PORT', 29500),
    secret: env.OMNITRAIN_STORE_SECRET || undefined,
    storeHosted: env.OMNITRAIN_STORE_HOSTED === '1',
    restartCount: intEnv(env, 'OMNITRAIN_RESTART_COUNT', 0),
  };
}

/** Options of {@link initProcessGroup}; anything omitted comes from the launcher's environment. */
export interface InitProcessGroupOptions {
  /** Registered process-group backend (default `'gloo'`). */
  backend?: string;
  rank?: number;
  worldSize?: number;
  /** The TCP store (default MASTER_ADDR:MASTER_PORT with OMNITRAIN_STORE_SECRET). */
  store?: StoreAddress;
  /** Timeout of the rendezvous and of every op (default 300 000 ms). */
  timeoutMs?: number;
  /**
   * Host the store in a worker thread of this process. Default: rank 0 does when no launcher hosts
   * it (`OMNITRAIN_STORE_HOSTED` unset) and no `store` was given.
   */
  hostStore?: boolean;
  /** Registry to find the backend in (default: the current one). */
  registry?: Registry;
  /** Environment to read (default `process.env`). */
  env?: Record<string, string | undefined>;
}

interface WorldState {
  world: ProcessGroup;
  backend: ProcessGroupBackend;
  store: StoreAddress;
  timeoutMs: number;
  server: WorkerStoreServer | null;
  /** '' or `restart<N>/`: keys of a restarted group never meet a previous attempt's. */
  basePrefix: string;
  groups: Set<ProcessGroup>;
  generations: Map<string, number>;
  /** Several ranks and no launcher hosting the store: ranks count themselves out on destroy. */
  leaveOnDestroy: boolean;
}

let state: WorldState | null = null;

function backendOf(registry: Registry, name: string): ProcessGroupBackend {
  const b = registry.processGroups.get(name) as ProcessGroupBackend;
  if (!b || typeof (b as ProcessGroupBackend).create !== 'function') {
    throw new Error(`process-group backend '${name}' is registered but has no create()`);
  }
  return b;
}

/**
 * Join the world: host the store if this is rank 0 without a launcher, then create the world group
 * through `registry.processGroups.get(backend).create(...)` (its rendezvous blocks until every rank
 * arrived or `timeoutMs` passed). Synchronous, like the collectives.
 */
export function initProcessGroup(opts: InitProcessGroupOptions = {}): ProcessGroup {
  if (state) throw new Error('initProcessGroup: already initialized; call destroyProcessGroup() first');
  const env = distributedEnv(opts.env ?? process.env);
  const rank = opts.rank ?? env.rank;
  const worldSize = opts.worldSize ?? env.worldSize;
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new Error(`initProcessGroup: world size ${worldSize} must be >= 1`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new Error(
      `initProcessGroup: rank ${rank} is outside the world of size ${worldSize} (check RANK / WORLD_SIZE)`,
    );
  }
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const backendName = opts.backend ?? 'gloo';
  const backend = backendOf(opts.registry ?? getRegistry(), backendName);
  let store: StoreAddress;
  if (opts.store) store = { ...opts.store };
  else {
    let secret = env.secret;
    if (!secret) {
      if (worldSize > 1) {
        throw new Error(
          'initProcessGroup: OMNITRAIN_STORE_SECRET is not set; start the ranks with `omnitrain launch`, ' +
            'or export the same secret in every rank (e.g. `export OMNITRAIN_STORE_SECRET=$(openssl rand -hex 16)`)',
        );
      }
      secret = randomBytes(16).toString('hex');
    }
    store = { host: env.masterAddr, port: env.masterPort, secret };
  }
  const host = opts.hostStore ?? (rank === 0 && !opts.store && !env.storeHosted);
  let server: WorkerStoreServer | null = null;
  if (host) {
    const bindHost = worldSize > env.localWorldSize || !isLoopback(store.host) ? '0.0.0.0' : store.host;
    server = startStoreServerInWorker({ host: bindHost, port: store.port, secret: store.secret });
    store.port = server.port;
  }
  const basePrefix = env.restartCount > 0 ? `restart${env.restartCount}/` : '';
  let world: ProcessGroup;
  try {
    world = backend.create({
      store,
      prefix: `${basePrefix}world`,
      rank,
      size: worldSize,
      ranks: Array.from({ length: worldSize }, (_, i) => i),
      name: 'world',
      timeoutMs,
    });
  } catch (e) {
    void server?.close();
    throw e;
  }
  state = {
    world,
    backend,
    store,
    timeoutMs,
    server,
    basePrefix,
    groups: new Set(),
    generations: new Map(),
    leaveOnDestroy: worldSize > 1 && !env.storeHosted,
  };
  return world;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** True between {@link initProcessGroup} and {@link destroyProcessGroup}. */
export function isInitialized(): boolean {
  return state !== null;
}

/** The world group; throws when not initialized. */
export function worldGroup(): ProcessGroup {
  if (!state) throw new Error('distributed is not initialized: call initProcessGroup() first');
  return state.world;
}

/**
 * A sub-group of the world over global `ranks` (group rank = position in `ranks`). Only members call
 * it, and they must create groups over the same rank set in the same order: the store prefix is
 * derived from the members and how many groups over them were created before.
 */
export function newGroup(ranks: readonly number[], name = 'group', opts: { timeoutMs?: number } = {}): ProcessGroup {
  if (!state) throw new Error(`newGroup('${name}'): call initProcessGroup() first`);
  const me = state.world.rank;
  const size = state.world.size;
  const seen = new Set<number>();
  for (const r of ranks) {
    if (!Number.isInteger(r) || r < 0 || r >= size)
      throw new Error(`newGroup('${name}'): rank ${r} outside world of size ${size}`);
    if (seen.has(r)) throw new Error(`newGroup('${name}'): rank ${r} listed twice in [${ranks.join(', ')}]`);
    seen.add(r);
  }
  const myIndex = ranks.indexOf(me);
  if (myIndex < 0) throw new Error(`newGroup('${name}'): rank ${me} is not a member of [${ranks.join(', ')}]`);
  const id = ranks.join(',');
  const gen = state.generations.get(id) ?? 0;
  state.generations.set(id, gen + 1);
  const g = state.backend.create({
    store: state.store,
    prefix: `${state.basePrefix}group/${id}/${gen}`,
    rank: myIndex,
    size: ranks.length,
    ranks: [...ranks],
    name,
    timeoutMs: opts.timeoutMs ?? state.timeoutMs,
  });
  const groups = state.groups;
  let destroyed = false;
  // Idempotent destroy, forgotten by destroyProcessGroup once done (a mesh may destroy it first).
  const wrapped = new Proxy(g, {
    get(target, prop, receiver) {
      if (prop === 'destroy') {
        return () => {
          if (destroyed) return;
          destroyed = true;
          groups.delete(wrapped);
          target.destroy();
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  groups.add(wrapped);
  return wrapped;
}

/** A {@link DeviceMesh} over the world whose sub-groups come from {@link newGroup}. */
export function initDeviceMesh(config: DeviceMeshConfig): DeviceMesh {
  const world = worldGroup();
  return new DeviceMesh(config, world.size, world.rank, (ranks, name) => newGroup(ranks, name), { world });
}

/** Destroy every group created since {@link initProcessGroup}, the world group, and a store this rank hosts. */
export function destroyProcessGroup(): void {
  if (!state) return;
  const s = state;
  state = null;
  const errors: unknown[] = [];
  for (const g of [...s.groups]) {
    try {
      g.destroy();
    } catch (e) {
      errors.push(e);
    }
  }
  try {
    s.world.destroy();
  } catch (e) {
    errors.push(e);
  }
  leaveStore(s);
  void s.server?.close();
  if (errors.length) throw errors[0];
}

/**
 * Every rank records that it left; the rank hosting the store keeps it up until all have (bounded wait),
 * so that a slower rank's last store requests do not find the server gone. Ranks under a launcher skip
 * this: the launcher hosts the store and outlives them.
 */
function leaveStore(s: WorldState): void {
  if (!s.leaveOnDestroy) return;
  const key = `${s.basePrefix}omnitrain/left`;
  const all = `${key}/all`;
  const size = s.world.size;
  if (!s.server) {
    // Asynchronous: the store may be served by this very thread (tests); the open socket keeps the
    // process alive until the count is sent.
    void (async () => {
      const c = await TcpStoreClient.connect(s.store, { timeoutMs: 10_000 });
      try {
        if (Number(await c.add(key, 1)) >= size) await c.set(all, '1');
      } finally {
        await c.close();
      }
    })().catch(() => {
      // the store is already gone: the host stopped waiting
    });
    return;
  }
  // The host's server runs in a worker thread, so a blocking client can wait for it here.
  let c: SyncTcpStoreClient | null = null;
  try {
    c = new SyncTcpStoreClient(s.store, 10_000);
    if (Number(c.add(key, 1)) >= size) c.set(all, '1');
    c.wait(all, Math.min(s.timeoutMs, 30_000));
  } catch {
    // a rank never left (it crashed or skipped destroyProcessGroup): stop waiting
  } finally {
    c?.close();
  }
}
