// The thread pool's default size: the CPUs the process may run on (its affinity mask), so that `taskset` or a
// cpuset limits it; OMNITRAIN_NUM_THREADS overrides it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allowNoNative, status } from './native-available.js';

const entry = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const taskset = ['/usr/bin/taskset', '/bin/taskset'].find((p) => existsSync(p));
const skip = (!status.available && allowNoNative) || !existsSync(entry);

/** nativeStatus().threads of a fresh Node process, started through `wrapper` (e.g. taskset) with `env` added. */
function threadsOf(wrapper: string[], env: Record<string, string>): number {
  const base = { ...process.env };
  delete base.OMNITRAIN_NUM_THREADS;
  const code = `import(${JSON.stringify(entry)}).then((k) => console.log(k.nativeStatus().threads))`;
  const [cmd, ...argv] = [...wrapper, process.execPath, '-e', code];
  const r = spawnSync(cmd!, argv, { encoding: 'utf8', env: { ...base, ...env } });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

describe('thread pool size', () => {
  it.skipIf(skip)('defaults to the CPUs the process may run on', () => {
    expect(threadsOf([], {})).toBe(availableParallelism());
  });
  it.skipIf(skip || !taskset)('follows the affinity mask (taskset -c 0 gives one thread)', () => {
    expect(threadsOf([taskset!, '-c', '0'], {})).toBe(1);
  });
  it.skipIf(skip)('OMNITRAIN_NUM_THREADS overrides it', () => {
    expect(threadsOf([], { OMNITRAIN_NUM_THREADS: '3' })).toBe(3);
  });
});
