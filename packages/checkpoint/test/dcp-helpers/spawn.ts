import { type ChildProcess, spawn } from 'node:child_process';

export interface Child {
  child: ChildProcess;
  output: string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Run the bundled test/dcp-helpers/child.ts (see bundle.ts) with `env`. */
export function spawnChild(script: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const c: Child = { child, output: '', done: null as never };
  child.stdout!.on('data', (d) => {
    c.output += d;
  });
  child.stderr!.on('data', (d) => {
    c.output += d;
  });
  c.done = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return c;
}
