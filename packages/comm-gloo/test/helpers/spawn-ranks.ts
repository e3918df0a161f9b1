import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

/** A rank process running test/helpers/rank-main.ts. */
export interface RankProcess {
  rank: number;
  child: ChildProcess;
  output: string;
  /** Resolves with the parsed `RESULT` line (or null) once the process exited. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; result: any }>;
  /** Resolves when the process printed `marker`. */
  waitFor(marker: string): Promise<void>;
}

/** Spawn `size` ranks of rank-main.ts with the given scenario against the store at `port`. */
export function spawnRanks(
  size: number,
  env: { port: number; secret: string; scenario: string; timeoutMs?: number; extra?: Record<string, string> },
): RankProcess[] {
  return Array.from({ length: size }, (_, rank) => {
    const child = spawn(
      process.execPath,
      [
        '--experimental-transform-types',
        '--no-warnings',
        '--import',
        here('./register-hooks.mjs'),
        here('./rank-main.ts'),
      ],
      {
        env: {
          ...process.env,
          RANK: String(rank),
          WORLD_SIZE: String(size),
          STORE_PORT: String(env.port),
          STORE_SECRET: env.secret,
          SCENARIO: env.scenario,
          TIMEOUT_MS: String(env.timeoutMs ?? 20000),
          ...env.extra,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const p: RankProcess = {
      rank,
      child,
      output: '',
      done: null as never,
      waitFor(marker) {
        return new Promise((resolve, reject) => {
          const tick = () => {
            if (p.output.includes(marker)) return resolve();
            if (child.exitCode !== null || child.signalCode !== null) {
              return reject(new Error(`rank ${rank} exited before printing ${marker}:\n${p.output}`));
            }
            setTimeout(tick, 20);
          };
          tick();
        });
      },
    };
    child.stdout!.on('data', (d) => {
      p.output += d;
    });
    child.stderr!.on('data', (d) => {
      p.output += d;
    });
    p.done = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        const line = p.output.split('\n').find((l) => l.startsWith('RESULT '));
        resolve({ code, signal, result: line ? JSON.parse(line.slice(7)) : null });
      });
    });
    return p;
  });
}
