import { isInitialized, type ProcessGroup, type SyncTcpStoreClient, Tensor, tensor, worldGroup } from '@omnitrain/core';

/** What a sharded save needs from the other ranks: who we are and a barrier. */
export interface Coordinator {
  readonly rank: number;
  readonly size: number;
  /** Block until every rank called it. */
  barrier(): void;
  /**
   * Every rank's `text`, in rank order (also a barrier). Needed by the parallel Hugging Face
   * export ({@link writeSafetensorsDirParallel}); the coordinators made here all have it.
   */
  allGather?(text: string): string[];
}

/** A coordinator over a process group (its barrier is the group's; allGather sends the text as int32 words). */
export function processGroupCoordinator(pg: ProcessGroup): Coordinator {
  return {
    rank: pg.rank,
    size: pg.size,
    barrier: () => pg.barrier().wait(),
    allGather(text) {
      const enc = new TextEncoder().encode(text);
      const len = tensor([enc.length], { dtype: 'int32' });
      const lens = Tensor.empty([pg.size], 'int32', 'cpu');
      let mine: Tensor | null = null;
      let all: Tensor | null = null;
      try {
        pg.allGather(lens, len).wait();
        const counts = Array.from(lens.raw() as Int32Array);
        const words = Math.max(1, ...counts.map((n) => Math.ceil(n / 4)));
        mine = Tensor.empty([words], 'int32', 'cpu');
        const mineBytes = new Uint8Array(mine.storage.handle as ArrayBuffer, mine.offset * 4, words * 4);
        mineBytes.fill(0);
        mineBytes.set(enc);
        all = Tensor.empty([pg.size * words], 'int32', 'cpu');
        pg.allGather(all, mine).wait();
        const bytes = new Uint8Array(all.storage.handle as ArrayBuffer, all.offset * 4, pg.size * words * 4);
        const dec = new TextDecoder();
        return counts.map((n, r) => dec.decode(bytes.subarray(r * words * 4, r * words * 4 + n)));
      } finally {
        len.dispose();
        lens.dispose();
        mine?.dispose();
        all?.dispose();
      }
    },
  };
}

/**
 * A coordinator over a key-value store (no collective backend needed): the `n`-th barrier sets
 * `<prefix>/b<n>/<rank>` and waits for every rank's key; the `n`-th allGather sets
 * `<prefix>/g<n>/<rank>` and reads every rank's. With a store that has `add`, `n` counts in the
 * store (`<prefix>/n/<rank>`), so coordinators made later with the same prefix (a save per step)
 * never meet an earlier call's keys; without it, use a fresh prefix per coordinator.
 */
export function storeCoordinator(
  store: Pick<SyncTcpStoreClient, 'set' | 'wait'> & Partial<Pick<SyncTcpStoreClient, 'get' | 'add'>>,
  rank: number,
  size: number,
  prefix = 'dcp',
): Coordinator {
  let local = 0;
  const next = () => (store.add ? Number(store.add(`${prefix}/n/${rank}`, 1)) - 1 : local++);
  return {
    rank,
    size,
    barrier() {
      const g = next();
      store.set(`${prefix}/b${g}/${rank}`, '1');
      store.wait(Array.from({ length: size }, (_, r) => `${prefix}/b${g}/${r}`));
    },
    allGather(text) {
      if (!store.get) throw new Error('storeCoordinator: allGather needs a store with get()');
      const g = next();
      store.set(`${prefix}/g${g}/${rank}`, text);
      const dec = new TextDecoder();
      return Array.from({ length: size }, (_, r) => dec.decode(store.get!(`${prefix}/g${g}/${r}`)));
    },
  };
}

/** The coordinator a save uses when none is given: the world group if initialized, else a single process. */
export function defaultCoordinator(c?: Coordinator | ProcessGroup): Coordinator {
  if (c) return 'barrier' in c && 'backend' in c ? processGroupCoordinator(c as ProcessGroup) : (c as Coordinator);
  if (isInitialized()) return processGroupCoordinator(worldGroup());
  return { rank: 0, size: 1, barrier() {}, allGather: (text) => [text] };
}
