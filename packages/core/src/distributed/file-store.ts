import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Store } from './store.js';

function fileName(key: string): string {
  return `k_${Buffer.from(key, 'utf8').toString('base64url')}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A store in a directory of a shared filesystem (NFS, Lustre...): one file per key, written to a
 * temporary name then renamed (atomic), counters updated under a lock file. Waits poll.
 */
export class FileStore implements Store {
  /**
   * @param dir directory shared by every rank (created if missing)
   * @param timeoutMs default wait of `get`/`wait` (default 300 000 ms)
   */
  constructor(
    readonly dir: string,
    readonly timeoutMs = 300_000,
  ) {}

  private file(key: string): string {
    return path.join(this.dir, fileName(key));
  }

  private async ensureDir(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
  }

  private async writeAtomic(file: string, value: Uint8Array): Promise<void> {
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await fs.writeFile(tmp, value);
    await fs.rename(tmp, file);
  }

  async set(key: string, value: Uint8Array | string): Promise<void> {
    await this.ensureDir();
    await this.writeAtomic(this.file(key), typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
  }

  private async tryRead(key: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(this.file(key));
    } catch (e: any) {
      if (e?.code === 'ENOENT') return null;
      throw e;
    }
  }

  async get(key: string, timeoutMs = this.timeoutMs): Promise<Uint8Array> {
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    for (;;) {
      const v = await this.tryRead(key);
      if (v) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      if (Date.now() >= deadline) {
        throw new Error(`FileStore ${this.dir}: get '${key}' timed out after ${timeoutMs} ms`);
      }
      await sleep(Math.min(delay, Math.max(1, deadline - Date.now())));
      delay = Math.min(100, delay * 2);
    }
  }

  async add(key: string, delta: number | bigint): Promise<bigint> {
    await this.ensureDir();
    const lock = `${this.file(key)}.lock`;
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      try {
        const h = await fs.open(lock, 'wx');
        await h.close();
        break;
      } catch (e: any) {
        if (e?.code !== 'EEXIST') throw e;
        if (Date.now() >= deadline) {
          throw new Error(`FileStore ${this.dir}: add '${key}' could not take lock ${lock} (stale? delete it)`);
        }
        await sleep(2);
      }
    }
    try {
      const cur = await this.tryRead(key);
      if (cur && cur.length !== 8) throw new Error(`FileStore ${this.dir}: add '${key}': value is not an i64 counter`);
      const next = BigInt.asIntN(64, (cur ? cur.readBigInt64LE(0) : 0n) + BigInt(delta));
      const out = Buffer.allocUnsafe(8);
      out.writeBigInt64LE(next, 0);
      await this.writeAtomic(this.file(key), out);
      return next;
    } finally {
      await fs.rm(lock, { force: true });
    }
  }

  async check(keys: string | readonly string[]): Promise<boolean> {
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      try {
        await fs.access(this.file(key));
      } catch {
        return false;
      }
    }
    return true;
  }

  async delete(key: string): Promise<boolean> {
    try {
      await fs.unlink(this.file(key));
      return true;
    } catch (e: any) {
      if (e?.code === 'ENOENT') return false;
      throw e;
    }
  }

  async wait(keys: string | readonly string[], timeoutMs = this.timeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const key of typeof keys === 'string' ? [keys] : keys) {
      await this.get(key, Math.max(0, deadline - Date.now()));
    }
  }

  async close(): Promise<void> {}
}
