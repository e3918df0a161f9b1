// A process of the dcp tests (spawned by test/dcp-*.test.ts through spawn.ts).
// SCENARIO=reshard-save: rank RANK of WORLD_SIZE saves its uneven shards to ROOT (store-coordinated).
// SCENARIO=crash: saves steps forever (resuming from ROOT first), printing BEGIN n / SAVED n.
// SCENARIO=hf-export: rank RANK of WORLD_SIZE exports its row blocks (uneven split) to OUT as a Hugging Face
//   checkpoint in parallel, then imports them back under the even split; prints RESULT {writes, reads, ok}.
import {
  dim0Shard,
  type FileOpener,
  type FileWriteOpener,
  nodeFileOpener,
  nodeFileWriteOpener,
  type ParallelTensor,
  readSafetensorsDirParallel,
  resumeCheckpoint,
  saveCheckpoint,
  shardedTensor,
  storeCoordinator,
  writeSafetensorsDirParallel,
} from '@omnitrain/checkpoint';
import { empty, SyncTcpStoreClient, tensor } from '@omnitrain/core';
import { block, bytesOf, evenSplit, SPECS, setPath, shardOf, unevenSplit } from './data.js';
import { HF_SPECS } from './hf-data.js';

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
} else if (env.SCENARIO === 'hf-export') {
  const rank = Number(env.RANK);
  const size = Number(env.WORLD_SIZE);
  const salt = Number(env.SALT ?? 0);
  const store = new SyncTcpStoreClient(
    { host: '127.0.0.1', port: Number(env.STORE_PORT), secret: env.STORE_SECRET! },
    Number(env.TIMEOUT_MS ?? 30_000),
  );
  const coordinator = () => storeCoordinator(store, rank, size, `hf-${env.OUT}-${env.RUN}`);
  const writes: [string, number, number, boolean][] = [];
  const writer: FileWriteOpener = (path, o) => {
    const f = nodeFileWriteOpener(path, o);
    return {
      ...f,
      write(src, position) {
        const n = f.write(src, position);
        writes.push([path.split('/').at(-1)!, position, n, o.create]);
        return n;
      },
    };
  };
  const shards = new Map<string, ParallelTensor>();
  for (const spec of HF_SPECS) {
    if (spec.replicated) {
      shards.set(
        spec.name,
        block(
          spec,
          spec.shape.map(() => 0),
          spec.shape,
          salt,
        ),
      );
      continue;
    }
    const { offsets, lengths } = shardOf(spec, size, rank, unevenSplit);
    if (env.BAD === 'shape' && rank === 1 && spec.name === 'lm_head.weight') {
      shards.set(spec.name, dim0Shard(block(spec, offsets, lengths, salt), spec.shape[0]! + 1, offsets[0]!));
      continue;
    }
    if (lengths[0] === 0) continue; // like shardedStateDict: no rows, no entry
    shards.set(spec.name, dim0Shard(block(spec, offsets, lengths, salt), spec.shape[0]!, offsets[0]!));
  }
  try {
    if (env.TWICE) {
      const other = new Map(
        HF_SPECS.filter((spec) => spec.replicated).map((spec) => [
          spec.name,
          block(
            spec,
            spec.shape.map(() => 0),
            spec.shape,
            salt + 7,
          ) as ParallelTensor,
        ]),
      );
      writeSafetensorsDirParallel(env.OUT!, other, {
        coordinator: coordinator(),
      });
    }
    writeSafetensorsDirParallel(env.OUT!, shards, {
      coordinator: coordinator(),
      maxShardBytes: Number(env.MAX_SHARD ?? 5e9),
      opener: writer,
      crashAfterWrites: env.CRASH_RANK === String(rank) ? 1 : undefined,
    });
  } catch (e) {
    say(`ERROR ${(e as Error).message}`);
    store.close();
    process.exit(3);
  }
  // Import under another split (even, FSDP-style) and compare with the tensors built directly.
  const reads: [string, number, number][] = [];
  const reader: FileOpener = (path) => {
    const f = nodeFileOpener(path);
    return {
      size: f.size,
      read(dst, position) {
        const n = f.read(dst, position);
        reads.push([path.split('/').at(-1)!, position, n]);
        return n;
      },
      close: () => f.close(),
    };
  };
  const targets = new Map<string, ParallelTensor>();
  const wanted = new Map<string, { offsets: number[]; lengths: number[] }>();
  for (const spec of HF_SPECS) {
    const { offsets, lengths } = spec.replicated
      ? { offsets: spec.shape.map(() => 0), lengths: spec.shape }
      : shardOf(spec, size, rank, evenSplit);
    const local = empty(lengths, { dtype: spec.dtype });
    wanted.set(spec.name, { offsets, lengths });
    targets.set(spec.name, spec.replicated ? local : dim0Shard(local, spec.shape[0]!, offsets[0]!));
  }
  const res = readSafetensorsDirParallel(env.OUT!, targets, { opener: reader, rank });
  const bad: string[] = [];
  for (const spec of HF_SPECS) {
    const { offsets, lengths } = wanted.get(spec.name)!;
    const t = targets.get(spec.name)!;
    const local = 'local' in t ? t.local : t;
    const want = bytesOf(block(spec, offsets, lengths, salt));
    if (Buffer.compare(Buffer.from(bytesOf(local)), Buffer.from(want)) !== 0) bad.push(spec.name);
  }
  say(`RESULT ${JSON.stringify({ writes, reads, bad, bytesRead: res.bytesRead })}`);
  store.close();
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
