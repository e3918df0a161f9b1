import {
  createRegistry,
  destroyProcessGroup,
  distributedEnv,
  initDeviceMesh,
  initProcessGroup,
  isInitialized,
  newGroup,
  type ProcessGroup,
  type ProcessGroupBackend,
  type ProcessGroupOptions,
  TcpStoreClient,
  TcpStoreServer,
  worldGroup,
} from '@omnitrain/core';
import { afterEach, describe, expect, it } from 'vitest';

/** A backend that records what it was asked to create (collectives are J2's Gloo binding). */
function recordingBackend() {
  const created: ProcessGroupOptions[] = [];
  const destroyed: string[] = [];
  const backend: ProcessGroupBackend = {
    name: 'fake',
    create(opts) {
      created.push(opts);
      return {
        backend: 'fake',
        name: opts.name,
        rank: opts.rank,
        size: opts.size,
        ranks: opts.ranks,
        destroy: () => destroyed.push(opts.prefix),
      } as unknown as ProcessGroup;
    },
  };
  const registry = createRegistry();
  registry.processGroups.register('fake', backend);
  return { registry, created, destroyed };
}

afterEach(() => {
  if (isInitialized()) destroyProcessGroup();
});

describe('initProcessGroup', () => {
  it('reads the launcher environment', () => {
    const env = distributedEnv({
      RANK: '3',
      WORLD_SIZE: '4',
      LOCAL_RANK: '1',
      LOCAL_WORLD_SIZE: '2',
      NODE_RANK: '1',
      MASTER_ADDR: 'head',
      MASTER_PORT: '1234',
      OMNITRAIN_STORE_SECRET: 's',
    });
    expect(env).toEqual({
      rank: 3,
      worldSize: 4,
      localRank: 1,
      localWorldSize: 2,
      nodeRank: 1,
      masterAddr: 'head',
      masterPort: 1234,
      secret: 's',
      storeHosted: false,
      restartCount: 0,
    });
    expect(() => distributedEnv({ RANK: 'x' })).toThrow(/RANK="x"/);
  });

  it('rank 0 without a launcher hosts the store in a worker; the world group gets the store and all ranks', async () => {
    const { registry, created, destroyed } = recordingBackend();
    const world = initProcessGroup({
      backend: 'fake',
      registry,
      env: { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '0', OMNITRAIN_STORE_SECRET: 'sec' },
      timeoutMs: 1234,
    });
    expect(worldGroup()).toBe(world);
    expect(created).toHaveLength(1);
    const o = created[0]!;
    expect(o).toMatchObject({ prefix: 'world', rank: 0, size: 2, ranks: [0, 1], name: 'world', timeoutMs: 1234 });
    expect(o.store.host).toBe('127.0.0.1');
    expect(o.store.port).toBeGreaterThan(0);
    expect(o.store.secret).toBe('sec');
    // The store really is there, guarded by the secret.
    const c = await TcpStoreClient.connect(o.store, { timeoutMs: 2000 });
    expect(await c.add('x', 1)).toBe(1n);
    await c.close();
    await expect(TcpStoreClient.connect({ ...o.store, secret: 'nope' }, { timeoutMs: 2000 })).rejects.toThrow(
      /refused the secret/,
    );
    expect(() => initProcessGroup({ backend: 'fake', registry, env: {} })).toThrow(/already initialized/);
    destroyProcessGroup();
    expect(destroyed).toEqual(['world']);
    expect(isInitialized()).toBe(false);
  });

  it('ranks under a launcher do not host the store; a missing secret or bad rank says what to do', async () => {
    const { registry, created } = recordingBackend();
    const server = await TcpStoreServer.start({ port: 0, secret: 'launcher' });
    try {
      initProcessGroup({
        backend: 'fake',
        registry,
        env: {
          RANK: '0',
          WORLD_SIZE: '2',
          MASTER_PORT: String(server.port),
          OMNITRAIN_STORE_SECRET: 'launcher',
          OMNITRAIN_STORE_HOSTED: '1',
        },
      });
      expect(created[0]!.store).toEqual({ host: '127.0.0.1', port: server.port, secret: 'launcher' });
      destroyProcessGroup();
    } finally {
      await server.close();
    }
    expect(() => initProcessGroup({ backend: 'fake', registry, env: { RANK: '1', WORLD_SIZE: '2' } })).toThrow(
      /OMNITRAIN_STORE_SECRET is not set; start the ranks with `omnitrain launch`/,
    );
    expect(() => initProcessGroup({ backend: 'fake', registry, env: { RANK: '2', WORLD_SIZE: '2' } })).toThrow(
      /rank 2 is outside the world of size 2/,
    );
    expect(() => initProcessGroup({ backend: 'nccl', registry, env: {} })).toThrow(
      /unknown process-group backend 'nccl'; installed: fake/,
    );
  });

  it('newGroup and mesh sub-groups get distinct prefixes derived from their members; destroy is once', async () => {
    const { registry, created, destroyed } = recordingBackend();
    const server = await TcpStoreServer.start({ port: 0, secret: 's' });
    try {
      const env = { RANK: '3', WORLD_SIZE: '4', MASTER_PORT: String(server.port), OMNITRAIN_STORE_SECRET: 's' };
      initProcessGroup({ backend: 'fake', registry, env, hostStore: false });
      const g = newGroup([1, 3], 'pair');
      expect(g.rank).toBe(1);
      expect(newGroup([1, 3], 'pair-again').size).toBe(2);
      expect(() => newGroup([0, 1], 'other')).toThrow(/rank 3 is not a member of \[0, 1\]/);
      expect(() => newGroup([3, 3], 'dup')).toThrow(/listed twice/);
      const mesh = initDeviceMesh({ dp_shard: 2, ulysses: 2 });
      expect(mesh.group('world')).toBe(worldGroup());
      const sp = mesh.group('sp');
      expect(sp.ranks).toEqual([2, 3]);
      expect(mesh.group('ulysses')).toBe(sp);
      expect(mesh.group('dp_shard').ranks).toEqual([1, 3]);
      const prefixes = created.map((o) => o.prefix);
      expect(prefixes).toEqual(['world', 'group/1,3/0', 'group/1,3/1', 'group/2,3/0', 'group/1,3/2']);
      expect(new Set(prefixes).size).toBe(prefixes.length);
      mesh.destroy();
      mesh.destroy();
      destroyProcessGroup();
      expect(destroyed.sort()).toEqual([...prefixes].sort());
      // After a launcher restart, no key of the previous attempt can be met.
      initProcessGroup({ backend: 'fake', registry, env: { ...env, OMNITRAIN_RESTART_COUNT: '2' }, hostStore: false });
      newGroup([2, 3]);
      expect(created.slice(-2).map((o) => o.prefix)).toEqual(['restart2/world', 'restart2/group/2,3/0']);
    } finally {
      await server.close();
    }
  });
});
