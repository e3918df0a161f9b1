// A process of the dcp tests (spawned by test/dcp-*.test.ts through spawn.ts).
// SCENARIO=reshard-save: rank RANK of WORLD_SIZE saves its uneven shards to ROOT (store-coordinated).
// SCENARIO=crash: saves steps forever (resuming from ROOT first), printing BEGIN n / SAVED n.
import { resumeCheckpoint, saveCheckpoint, shardedTensor, storeCoordinator } from '@omnitrain/checkpoint';
import { SyncTcpStoreClient, tensor } from '@omnitrain/core';
import { block, SPECS, setPath, shardOf, unevenSplit } from './data.js';

const env = process.env;
const root = env.ROOT!;
const say = (s: string) => process.stdout.write(`${s}\n`);

if (env.SCENARIO === 'reshard-save') {
  const rank = Number(env.RANK);
  const size = Number(env.WORLD_SIZE);
  const store = new SyncTcpStoreClient(
    { host: '127.0.0.1', port: Number(env.STORE_PORT), secret: env.STORE_SECRET! },
    30_000,
  );
  const coordinator = storeCoordinator(store, rank, size, `dcp-${env.ROOT}`);
  const state: Record<string, unknown> = {
    step: 5,
    data: { rank, cursor: 1000 + rank, epoch: 1 },
    rng: { seed: '42', offsets: { '': 17 + rank } },
  };
  for (const spec of SPECS) {
    const { offsets, lengths } = shardOf(spec, size, rank, unevenSplit);
    setPath(state, spec.name, shardedTensor(block(spec, offsets, lengths), spec.shape, offsets));
  }
  setPath(state, 'model.scale', tensor([1.5, -2, 3.25, 0], { dtype: 'float32' }));
  saveCheckpoint(root, 5, state, { coordinator, blockBytes: 64 });
  store.close();
  say('DONE');
} else if (env.SCENARIO === 'crash') {
  const slowMs = Number(env.SLOW_MS ?? 2);
  const targets = (salt: number) => {
    const state: Record<string, unknown> = { step: salt, data: { cursor: salt * 10 } };
    for (const spec of SPECS)
      setPath(
        state,
        spec.name,
        block(
          spec,
          spec.shape.map(() => 0),
          spec.shape,
          salt,
        ),
      );
    return state;
  };
  const res = resumeCheckpoint(root, targets(0));
  let step = res ? res.step + 1 : 1;
  for (;;) {
    say(`BEGIN ${step}`);
    saveCheckpoint(root, step, targets(step), { keep: 2, slowMs, blockBytes: 256 });
    say(`SAVED ${step}`);
    step++;
  }
}
