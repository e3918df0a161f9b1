import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { StoreOp, StoreStatus, TcpStoreClient, TcpStoreServer } from '@omnitrain/core';
import type { LaunchOptions } from './launch-args.js';

/** Where the launcher writes: ranks' prefixed lines and its own messages. */
export interface LaunchIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  /** Base environment of the ranks (default `process.env`). */
  env?: Record<string, string | undefined>;
}

/** How the first failing rank ended. */
export interface RankFailure {
  rank: number;
  localRank: number;
  pid: number | undefined;
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all. */
  spawnError?: string;
  /** Node of the rank (set when another launcher reported the failure). */
  node?: number;
  /** True when another node's launcher reported this failure through the store. */
  remote?: boolean;
  /** A failure that is not a rank's (e.g. the store was lost, a launcher was stopped). */
  reason?: string;
}

/** Outcome of {@link launch}. */
export interface LaunchResult {
  /** 0 when every rank of the last attempt exited 0. */
  exitCode: number;
  /** The rank that ended the last attempt, if any. */
  failure: RankFailure | null;
  /** Attempts made (1 + restarts). */
  attempts: number;
  /** The message printed for the failure. */
  message: string | null;
}

/** A started launch, with a way to stop it from outside (signals). */
export interface RunningLaunch {
  readonly done: Promise<LaunchResult>;
  /** Stop every rank (SIGTERM, then SIGKILL after the grace period) and make no more restarts. */
  stop(signal?: NodeJS.Signals): void;
}

/** Describe how a rank ended, e.g. `rank 1 (local rank 1, pid 42) exited with code 3`. */
export function describeFailure(f: RankFailure): string {
  if (f.reason) return f.reason;
  const where = f.node !== undefined ? `node ${f.node}, ` : '';
  const who = `rank ${f.rank} (${where}local rank ${f.localRank}${f.pid !== undefined ? `, pid ${f.pid}` : ''})`;
  if (f.remote) {
    const how = f.spawnError
      ? `could not be started: ${f.spawnError}`
      : f.signal
        ? `was killed by signal ${f.signal}`
        : `exited with code ${f.code}`;
    return `${who} ${how} (reported by node ${f.node}'s launcher)`;
  }
  if (f.spawnError) return `${who} could not be started: ${f.spawnError}`;
  if (f.signal) return `${who} was killed by signal ${f.signal}`;
  return `${who} exited with code ${f.code}`;
}

/** Splits a stream into lines and writes each with a prefix; a last partial line is flushed at the end. */
class LinePrefixer {
  private rest = '';
  constructor(
    private readonly prefix: string,
    private readonly out: { write(s: string): unknown },
  ) {}
  push(chunk: string): void {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop()!;
    if (lines.length) this.out.write(lines.map((l) => `${this.prefix}${l}\n`).join(''));
  }
  flush(): void {
    if (this.rest) this.out.write(`${this.prefix}${this.rest}\n`);
    this.rest = '';
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal); // the rank and anything it started
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Start the ranks described by `opts` (see `parseLaunchArgs`): host the TCP store if this launcher is
 * node 0, spawn each rank with its environment, prefix its output, and when one exits non-zero or is
 * killed, stop the others (SIGTERM, then SIGKILL after the grace period) and either restart the group
 * (`maxRestarts`) or finish with exit code 1 and a message naming the rank.
 */
export function startLaunch(opts: LaunchOptions, io: LaunchIO): RunningLaunch {
  let stopping: NodeJS.Signals | null = null;
  let current: { stopAll: (sig: NodeJS.Signals) => void } | null = null;
  const log = (s: string) => io.stderr.write(`[omnitrain launch] ${s}\n`);

  const done = (async (): Promise<LaunchResult> => {
    const secret = opts.secret ?? randomBytes(16).toString('hex');
    let server: TcpStoreServer | null = null;
    let port = opts.masterPort;
    if (opts.hostsStore) {
      const host =
        opts.worldSize > opts.localWorldSize ? '0.0.0.0' : isLoopback(opts.masterAddr) ? opts.masterAddr : '0.0.0.0';
      server = await TcpStoreServer.start({ host, port: opts.masterPort, secret });
      port = server.port;
    }
    const last = opts.firstRank + opts.nprocPerNode - 1;
    log(
      `node ${opts.nodeRank} of ${opts.nnodes}: ranks ${opts.firstRank === last ? last : `${opts.firstRank}-${last}`} ` +
        `of ${opts.worldSize}, store ${opts.masterAddr}:${port}${opts.hostsStore ? ' (hosted here)' : ''}` +
        (opts.source === 'slurm' ? ', from Slurm variables' : ''),
    );
    const launchers = Math.round(opts.worldSize / opts.nprocPerNode);
    let coord: Coordinator | null = null;
    try {
      if (launchers > 1) coord = await Coordinator.connect(opts, port, secret, launchers);
      let attempt = 0;
      for (;;) {
        if (stopping) {
          // stopped between two attempts
          const message = `stopped by ${stopping}`;
          log(message);
          return { exitCode: 128 + (signalNumber(stopping) ?? 15), failure: null, attempts: attempt, message };
        }
        if (!coord) server?.clear(); // several launchers: keys are scoped by attempt instead
        let failure = await runAttempt(attempt, port, secret, coord);
        if (!failure && coord && !stopping) failure = await coord.finish(attempt, opts.hostsStore);
        if (!failure) return { exitCode: 0, failure: null, attempts: attempt + 1, message: null };
        const what = describeFailure(failure);
        if (stopping) {
          const message = `stopped by ${stopping}`;
          log(message);
          return { exitCode: 128 + (signalNumber(stopping) ?? 15), failure, attempts: attempt + 1, message };
        }
        if (attempt < opts.maxRestarts) {
          attempt++;
          log(`${what}; stopped the other ranks; restarting the group (restart ${attempt} of ${opts.maxRestarts})`);
          continue;
        }
        const message =
          `${what}; stopped the other ranks` +
          (opts.maxRestarts > 0 ? ` (no restarts left of ${opts.maxRestarts})` : '');
        log(message);
        return { exitCode: 1, failure, attempts: attempt + 1, message };
      }
    } finally {
      await coord?.close();
      await server?.close();
    }
  })();

  function runAttempt(
    attempt: number,
    port: number,
    secret: string,
    coord: Coordinator | null,
  ): Promise<RankFailure | null> {
    return new Promise((resolveAttempt) => {
      let active = true;
      const baseEnv = io.env ?? process.env;
      const children: { child: ChildProcess; rank: number; localRank: number; exited: boolean; closed: boolean }[] = [];
      let failure: RankFailure | null = null;
      let killTimer: NodeJS.Timeout | null = null;
      let remaining = opts.nprocPerNode;

      const stopAll = (sig: NodeJS.Signals) => {
        for (const c of children) if (!c.exited) killGroup(c.child, sig);
        if (!killTimer) {
          killTimer = setTimeout(() => {
            for (const c of children) if (!c.exited) killGroup(c.child, 'SIGKILL');
          }, opts.gracePeriodMs);
          killTimer.unref();
        }
      };
      current = {
        stopAll: (sig) => {
          if (coord && !failure) {
            failure = {
              rank: -1,
              localRank: -1,
              pid: undefined,
              code: null,
              signal: null,
              reason: `stopped by ${sig}`,
            };
            void coord.publish(attempt, {
              ...failure,
              reason: `node ${opts.nodeRank}'s launcher was stopped by ${sig}`,
            });
          }
          stopAll(sig);
        },
      };
      if (coord) {
        coord
          .watch(attempt, () => active)
          .then(
            (remote) => {
              if (remote && !failure && active) {
                failure = remote;
                stopAll('SIGTERM');
              }
            },
            (e: Error) => {
              if (!failure && active) {
                failure = { rank: -1, localRank: -1, pid: undefined, code: null, signal: null, reason: e.message };
                stopAll('SIGTERM');
              }
            },
          );
      }

      const finishOne = () => {
        remaining--;
        if (remaining === 0) {
          active = false;
          if (killTimer) clearTimeout(killTimer);
          current = null;
          resolveAttempt(failure);
        }
      };

      for (let local = 0; local < opts.nprocPerNode; local++) {
        const rank = opts.firstRank + local;
        const localRank = opts.firstLocalRank + local;
        const env: Record<string, string | undefined> = {
          ...baseEnv,
          RANK: String(rank),
          WORLD_SIZE: String(opts.worldSize),
          LOCAL_RANK: String(localRank),
          LOCAL_WORLD_SIZE: String(opts.localWorldSize),
          NODE_RANK: String(opts.nodeRank),
          MASTER_ADDR: opts.masterAddr,
          MASTER_PORT: String(port),
          OMNITRAIN_STORE_SECRET: secret,
          OMNITRAIN_STORE_HOSTED: '1',
          OMNITRAIN_RESTART_COUNT: String(attempt),
          OMNITRAIN_MAX_RESTARTS: String(opts.maxRestarts),
        };
        const args = [...typeScriptFlags(opts.script), ...opts.nodeArgs, opts.script, ...opts.scriptArgs];
        const child = spawn(process.execPath, args, {
          env: env as NodeJS.ProcessEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
          detached: true,
        });
        const entry = { child, rank, localRank, exited: false, closed: false };
        children.push(entry);
        const prefix = `[rank ${rank}] `;
        const out = new LinePrefixer(prefix, io.stdout);
        const err = new LinePrefixer(prefix, io.stderr);
        child.stdout!.setEncoding('utf8').on('data', (s: string) => out.push(s));
        child.stderr!.setEncoding('utf8').on('data', (s: string) => err.push(s));
        let settled = false;
        const settle = () => {
          if (settled) return;
          settled = true;
          out.flush();
          err.flush();
          finishOne();
        };
        const onEnd = (code: number | null, signal: NodeJS.Signals | null, spawnError?: string) => {
          if (entry.exited) return;
          entry.exited = true;
          const failed = spawnError !== undefined || code !== 0;
          if (failed && !failure && !stopping) {
            failure = { rank, localRank, pid: child.pid, code, signal, spawnError };
            if (coord) void coord.publish(attempt, { ...failure, node: opts.nodeRank, remote: true });
            // its own descendants too
            killGroup(child, 'SIGKILL');
            stopAll('SIGTERM');
          } else if (failed && !failure && stopping) {
            failure = { rank, localRank, pid: child.pid, code, signal, spawnError };
          }
          // Output pipes normally close right after exit; do not wait on descendants that keep them open.
          const t = setTimeout(settle, 2000);
          t.unref();
          child.once('close', () => {
            clearTimeout(t);
            settle();
          });
          if (spawnError !== undefined) settle();
        };
        child.on('exit', (code, signal) => onEnd(code, signal));
        child.on('error', (e) => onEnd(null, null, e.message));
      }
    });
  }

  return {
    done,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!stopping) stopping = signal;
      current?.stopAll('SIGTERM');
    },
  };
}

/** Run a launch to completion. */
export function launch(opts: LaunchOptions, io: LaunchIO): Promise<LaunchResult> {
  return startLaunch(opts, io).done;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  return ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as Record<string, number>)[sig];
}

/** Node < 22.18 needs a flag to run TypeScript files directly. */
function typeScriptFlags(script: string): string[] {
  if (!/\.[mc]?ts$/.test(script)) return [];
  const features = process.features as { typescript?: unknown };
  return features.typescript ? [] : ['--experimental-strip-types'];
}

/**
 * Failure propagation between the launchers of several nodes, through the TCP store: a launcher whose
 * rank fails publishes `omnitrain/launch/<attempt>/failed`; every launcher watches that key and stops
 * its ranks when it appears; a launcher whose ranks all succeeded waits until every launcher did
 * (`.../done`) so that node 0 keeps the store up for the others.
 */
class Coordinator {
  /** Publishes still in flight: closing must wait for them, or a failure could be lost on the way. */
  private readonly pending = new Set<Promise<void>>();

  private constructor(
    private readonly control: TcpStoreClient,
    private readonly watcher: TcpStoreClient,
    private readonly launchers: number,
  ) {}

  static async connect(opts: LaunchOptions, port: number, secret: string, launchers: number): Promise<Coordinator> {
    const addr = { host: opts.masterAddr, port, secret };
    const control = await TcpStoreClient.connect(addr, { timeoutMs: 300_000 });
    const watcher = await TcpStoreClient.connect(addr, { timeoutMs: 300_000 });
    return new Coordinator(control, watcher, launchers);
  }

  private key(attempt: number, what: string): string {
    return `omnitrain/launch/${attempt}/${what}`;
  }

  publish(attempt: number, f: RankFailure): Promise<void> {
    const p = (async () => {
      try {
        if (!(await this.control.check(this.key(attempt, 'failed')))) {
          await this.control.set(this.key(attempt, 'failed'), JSON.stringify(f));
        }
      } catch {
        // the store is gone; the other launchers notice that themselves
      }
    })();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  /** Resolves with the failure another launcher published, or null once `active()` turns false. */
  async watch(attempt: number, active: () => boolean): Promise<RankFailure | null> {
    const key = this.key(attempt, 'failed');
    while (active()) {
      const r = await this.watcher.request(StoreOp.WAIT, key, undefined, 500);
      if (r.status === StoreStatus.OK) {
        return JSON.parse(Buffer.from(await this.watcher.get(key, 1000)).toString('utf8')) as RankFailure;
      }
      if (r.status !== StoreStatus.TIMEOUT) throw new Error(`launcher coordination failed: ${r.body.toString('utf8')}`);
    }
    return null;
  }

  /** After local success: wait until every launcher succeeded (null) or one failed (its failure). */
  async finish(attempt: number, hostsStore: boolean): Promise<RankFailure | null> {
    const c = this.control;
    try {
      const n = await c.add(this.key(attempt, 'done'), 1);
      if (Number(n) >= this.launchers) await c.set(this.key(attempt, 'all-done'), '1');
      else {
        for (;;) {
          const r = await c.request(StoreOp.WAIT, this.key(attempt, 'all-done'), undefined, 500);
          if (r.status === StoreStatus.OK) break;
          if (await c.check(this.key(attempt, 'failed'))) {
            return JSON.parse(
              Buffer.from(await c.get(this.key(attempt, 'failed'), 1000)).toString('utf8'),
            ) as RankFailure;
          }
        }
      }
      // The launcher hosting the store keeps it up until every launcher has seen the outcome.
      const left = await c.add(this.key(attempt, 'left'), 1);
      if (Number(left) >= this.launchers) await c.set(this.key(attempt, 'all-left'), '1');
      if (hostsStore) await c.request(StoreOp.WAIT, this.key(attempt, 'all-left'), undefined, 10_000);
      return null;
    } catch (e) {
      return {
        rank: -1,
        localRank: -1,
        pid: undefined,
        code: null,
        signal: null,
        reason: `lost the TCP store while waiting for the other nodes: ${(e as Error).message}`,
      };
    }
  }

  async close(): Promise<void> {
    // A rank's failure must reach the store before this launcher lets go of it.
    await Promise.all(this.pending);
    await Promise.all([this.control.close(), this.watcher.close()]);
  }
}
