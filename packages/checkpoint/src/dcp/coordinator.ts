import { isInitialized, type ProcessGroup, type SyncTcpStoreClient, worldGroup } from '@omnitrain/core';

/** What a sharded save needs from the other ranks: who we are and a barrier. */
export interface Coordinator {
  readonly rank: number;
  readonly size: number;
  /** Block until every rank called it. */
  barrier(): void;
}

/** A coordinator over a process group (its barrier is the group's). */
export function processGroupCoordinator(pg: ProcessGroup): Coordinator {
  return { rank: pg.rank, size: pg.size, barrier: () => pg.barrier().wait() };
}

/**
 * A coordinator over a key-value store (no collective backend needed): the `n`-th barrier sets
 * `<prefix>/b<n>/<rank>` and waits for every rank's key.
 */
export function storeCoordinator(
  store: Pick<SyncTcpStoreClient, 'set' | 'wait'>,
  rank: number,
  size: number,
  prefix = 'dcp',
): Coordinator {
  let gen = 0;
  return {
    rank,
    size,
    barrier() {
      const g = gen++;
      store.set(`${prefix}/b${g}/${rank}`, '1');
      store.wait(Array.from({ length: size }, (_, r) => `${prefix}/b${g}/${r}`));
    },
  };
}

/** The coordinator a save uses when none is given: the world group if initialized, else a single process. */
export function defaultCoordinator(c?: Coordinator | ProcessGroup): Coordinator {
  if (c) return 'barrier' in c && 'backend' in c ? processGroupCoordinator(c as ProcessGroup) : (c as Coordinator);
  if (isInitialized()) return processGroupCoordinator(worldGroup());
  return { rank: 0, size: 1, barrier() {} };
}
