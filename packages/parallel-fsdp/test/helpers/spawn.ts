import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Run `n` ranks of a helper script (default fsdp-rank.ts) with `env`; resolves with each rank's
 * RESULT line (throws with the output on failure).
 */
export async function runRanks(n: number, env: Record<string, string>, script = './fsdp-rank.ts'): Promise<any[]> {
  const port = await freePort();
  const secret = `s${Math.random().toString(16).slice(2)}`;
  const runs = Array.from({ length: n }, (_, rank) => {
    const child = spawn(
      process.execPath,
      ['--experimental-transform-types', '--no-warnings', '--import', here('./register-hooks.mjs'), here(script)],
      {
        env: {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: String(n),
          MASTER_ADDR: '127.0.0.1',
          MASTER_PORT: String(port),
          OMNITRAIN_STORE_SECRET: secret,
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    return new Promise<any>((resolve, reject) => {
      child.on('exit', (code) => {
        const line = out.split('\n').find((l) => l.startsWith('RESULT '));
        if (code !== 0 || !line)
          reject(new Error(`rank ${rank} of ${n} (${JSON.stringify(env)}) exited ${code}:\n${out}`));
        else resolve(JSON.parse(line.slice(7)));
      });
    });
  });
  return Promise.all(runs);
}

/** max |a-b| / max |b| over two series. */
export function relErr(a: number[], b: number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}
