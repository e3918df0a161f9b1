// Joins the world through initProcessGroup with a store-only test backend (each group's members
// publish their global rank under the group's prefix and read everyone's back), then creates the
// mesh sub-groups and prints who actually met in each. Needs the built @omnitrain/core.
import {
  defaultRegistry,
  destroyProcessGroup,
  initDeviceMesh,
  initProcessGroup,
  SyncTcpStoreClient,
} from '@omnitrain/core';

defaultRegistry().processGroups.register('store-test', {
  name: 'store-test',
  create(o) {
    const c = new SyncTcpStoreClient(o.store, o.timeoutMs);
    c.set(`${o.prefix}/member/${o.rank}`, String(process.env.RANK));
    // A slow rank: its reads come after the others are done (the store's host must still be up).
    if (process.env.MESH_SLOW_RANK === process.env.RANK)
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    const seen = [];
    for (let i = 0; i < o.size; i++) seen.push(Number(Buffer.from(c.get(`${o.prefix}/member/${i}`)).toString()));
    c.close();
    return { backend: 'store-test', name: o.name, rank: o.rank, size: o.size, ranks: o.ranks, seen, destroy() {} };
  },
});
const world = initProcessGroup({ backend: 'store-test', timeoutMs: 15_000 });
const mesh = initDeviceMesh(JSON.parse(process.argv[2]));
const out = { world: world.seen };
for (const name of process.argv.slice(3)) out[name] = mesh.group(name).seen;
console.log(`MET ${JSON.stringify(out)}`);
destroyProcessGroup();
