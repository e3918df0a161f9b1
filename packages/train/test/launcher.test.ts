import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { launch, main, parseLaunchArgs } from '@omnitrain/train';
import { describe, expect, it } from 'vitest';

const ranks = (name: string) => fileURLToPath(new URL(`./ranks/${name}`, import.meta.url));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: {
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      env: cleanEnv(),
    },
    out: () => out.join(''),
    err: () => err.join(''),
  };
}

/** The test runner's environment without Slurm/launcher variables that would change defaults. */
function cleanEnv(): Record<string, string | undefined> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (k.startsWith('SLURM_') || ['MASTER_ADDR', 'MASTER_PORT', 'OMNITRAIN_STORE_SECRET', 'RANK'].includes(k))
      delete env[k];
  }
  return env;
}

async function run(args: string[]) {
  const c = capture();
  const opts = parseLaunchArgs(args, c.io.env)!;
  const t0 = Date.now();
  const result = await launch(opts, c.io);
  return { ...c, result, ms: Date.now() - t0 };
}

describe('omnitrain launch', () => {
  it('gives each rank its environment and prefixes every line with its rank', async () => {
    const r = await run(['--nproc-per-node', '3', '--master-port', '0', ranks('env.mjs'), 'a', '--b']);
    expect(r.result.exitCode).toBe(0);
    const envs = [...r.out().matchAll(/^\[rank (\d)\] ENV (.*)$/gm)].map((m) => ({
      tag: Number(m[1]),
      ...JSON.parse(m[2]!),
    }));
    expect(envs.map((e) => e.tag).sort()).toEqual([0, 1, 2]);
    for (const e of envs) {
      expect(e.RANK).toBe(String(e.tag));
      expect(e.LOCAL_RANK).toBe(String(e.tag));
      expect(e.WORLD_SIZE).toBe('3');
      expect(e.LOCAL_WORLD_SIZE).toBe('3');
      expect(e.NODE_RANK).toBe('0');
      expect(e.MASTER_ADDR).toBe('127.0.0.1');
      expect(Number(e.MASTER_PORT)).toBeGreaterThan(0);
      expect(e.secretLength).toBeGreaterThanOrEqual(16);
      expect(e.args).toEqual(['a', '--b']);
    }
    for (const rank of [0, 1, 2]) {
      expect(r.out()).toContain(`[rank ${rank}] first line\n[rank ${rank}] second line\n`);
      expect(r.out()).toContain(`[rank ${rank}] no newline at the end\n`);
      expect(r.err()).toContain(`[rank ${rank}] to stderr\n`);
    }
    // no unprefixed line from a rank
    for (const line of r.out().trimEnd().split('\n')) expect(line).toMatch(/^\[rank \d\] /);
  });

  it('hosts the TCP store: ranks authenticate with OMNITRAIN_STORE_SECRET, a wrong secret is refused', async () => {
    const ok = await run(['--nproc-per-node', '2', '--master-port', '0', ranks('store.mjs')]);
    expect(ok.result.exitCode).toBe(0);
    const joined = [...ok.out().matchAll(/auth ok, joined (\d)/g)].map((m) => Number(m[1])).sort();
    expect(joined).toEqual([1, 2]);
    const bad = await run(['--nproc-per-node', '1', '--master-port', '0', ranks('store.mjs'), 'wrong']);
    expect(bad.out()).toContain('[rank 0] auth status 3');
    expect(bad.result.exitCode).toBe(1);
  });

  it('a rank exiting with code 3 stops the others within seconds and names rank 1 and code 3', async () => {
    const r = await run(['--nproc-per-node', '3', '--master-port', '0', ranks('fail.mjs')]);
    expect(r.result.exitCode).toBe(1);
    expect(r.result.failure).toMatchObject({ rank: 1, code: 3, signal: null });
    expect(r.err()).toMatch(
      /\[omnitrain launch\] rank 1 \(local rank 1, pid \d+\) exited with code 3; stopped the other ranks/,
    );
    expect(r.out()).not.toContain('should not happen');
    expect(r.ms).toBeLessThan(5000);
  });

  it('a rank killed by SIGKILL is reported; ranks ignoring SIGTERM are killed after the grace period', async () => {
    const r = await run(['--nproc-per-node', '2', '--master-port', '0', '--grace-period', '1', ranks('sigkill.mjs')]);
    expect(r.result.exitCode).toBe(1);
    expect(r.result.failure).toMatchObject({ rank: 1, code: null, signal: 'SIGKILL' });
    expect(r.err()).toMatch(/rank 1 \(local rank 1, pid \d+\) was killed by signal SIGKILL/);
    expect(r.out()).toContain('[rank 0] ignoring SIGTERM');
    expect(r.ms).toBeGreaterThanOrEqual(1000);
    expect(r.ms).toBeLessThan(6000);
  });

  it('--max-restarts restarts the whole group', async () => {
    const ok = await run(['--nproc-per-node', '2', '--master-port', '0', '--max-restarts', '2', ranks('restart.mjs')]);
    expect(ok.result.exitCode).toBe(0);
    expect(ok.result.attempts).toBe(3);
    expect(ok.err()).toMatch(
      /rank 1 .*exited with code 7; stopped the other ranks; restarting the group \(restart 1 of 2\)/,
    );
    expect(ok.out()).toContain('[rank 0] attempt 2');
    const fail = await run([
      '--nproc-per-node',
      '2',
      '--master-port',
      '0',
      '--max-restarts',
      '1',
      ranks('restart.mjs'),
    ]);
    expect(fail.result.exitCode).toBe(1);
    expect(fail.result.attempts).toBe(2);
    expect(fail.err()).toMatch(/exited with code 7; stopped the other ranks \(no restarts left of 1\)/);
  });

  it('runs TypeScript scripts', async () => {
    const r = await run(['--nproc-per-node', '2', '--master-port', '0', ranks('hello.ts')]);
    expect(r.result.exitCode).toBe(0);
    expect(r.out()).toContain('[rank 0] hello from 0 of 2\n');
    expect(r.out()).toContain('[rank 1] hello from 1 of 2\n');
  });

  it('a busy master port is a clear error', async () => {
    const first = capture();
    const hold = parseLaunchArgs(['--master-port', '0', ranks('fail.mjs')], first.io.env)!;
    const { TcpStoreServer } = await import('@omnitrain/core');
    const s = await TcpStoreServer.start({ port: 0, secret: 'x' });
    try {
      const c = capture();
      const code = await main(['launch', '--master-port', String(s.port), ranks('env.mjs')], c.io);
      expect(code).toBe(1);
      expect(c.err()).toMatch(new RegExp(`port ${s.port} .*already in use`));
    } finally {
      await s.close();
    }
    expect(hold.masterPort).toBe(0);
  });
});

describe('omnitrain launch on two nodes (two launchers on this machine)', () => {
  async function freePort(): Promise<number> {
    const { TcpStoreServer } = await import('@omnitrain/core');
    const s = await TcpStoreServer.start({ port: 0, secret: 'probe' });
    const port = s.port;
    await s.close();
    return port;
  }
  async function twoNodes(script: string, args: string[], extra: string[] = []) {
    const port = await freePort();
    const nodes = [0, 1].map((node) => {
      const c = capture();
      c.io.env.OMNITRAIN_STORE_SECRET = 'two-node-secret';
      const argv = [
        '--nnodes',
        '2',
        '--node-rank',
        String(node),
        '--nproc-per-node',
        '2',
        '--master-port',
        String(port),
      ];
      const opts = parseLaunchArgs([...argv, ...extra, ranks(script), ...args], c.io.env)!;
      return { ...c, opts };
    });
    const t0 = Date.now();
    const results = await Promise.all(nodes.map((n) => launch(n.opts, n.io)));
    return { nodes, results, ms: Date.now() - t0 };
  }

  it('ranks 0-3 are spread over the nodes and both launchers succeed', async () => {
    const r = await twoNodes('env.mjs', []);
    expect(r.results.map((x) => x.exitCode)).toEqual([0, 0]);
    const envs = r.nodes.map((n) => [...n.out().matchAll(/ENV (.*)$/gm)].map((m) => JSON.parse(m[1]!)));
    expect(envs[0]!.map((e) => [e.RANK, e.LOCAL_RANK, e.NODE_RANK]).sort()).toEqual([
      ['0', '0', '0'],
      ['1', '1', '0'],
    ]);
    expect(envs[1]!.map((e) => [e.RANK, e.LOCAL_RANK, e.NODE_RANK]).sort()).toEqual([
      ['2', '0', '1'],
      ['3', '1', '1'],
    ]);
    for (const e of envs.flat()) expect(e.WORLD_SIZE).toBe('4');
  });

  it('a rank failing on node 1 stops node 0 too, and both launchers name it', async () => {
    const r = await twoNodes('fail-rank.mjs', ['3']);
    expect(r.results.map((x) => x.exitCode)).toEqual([1, 1]);
    expect(r.results[1]!.failure).toMatchObject({ rank: 3, code: 4 });
    expect(r.results[0]!.failure).toMatchObject({ rank: 3, code: 4, node: 1, remote: true });
    expect(r.nodes[0]!.err()).toMatch(
      /rank 3 \(node 1, local rank 1, pid \d+\) exited with code 4 \(reported by node 1's launcher\)/,
    );
    expect(r.ms).toBeLessThan(8000);
  });

  it('restarts both nodes together', async () => {
    const r = await twoNodes('restart.mjs', [], ['--max-restarts', '2']);
    expect(r.results.map((x) => [x.exitCode, x.attempts])).toEqual([
      [0, 3],
      [0, 3],
    ]);
    expect(r.nodes[1]!.err()).toMatch(
      /rank 1 .*reported by node 0's launcher.*restarting the group \(restart 1 of 2\)/,
    );
  });
});

// Rank scripts import the built @omnitrain/core (CI builds every package before testing).
const coreBuilt = existsSync(fileURLToPath(new URL('../../core/dist/index.js', import.meta.url)));

describe.skipIf(!coreBuilt)('ranks meet through initProcessGroup and DeviceMesh sub-groups (4 processes)', () => {
  function met(out: string): Map<number, Record<string, number[]>> {
    const m = new Map<number, Record<string, number[]>>();
    for (const x of out.matchAll(/^\[rank (\d)\] MET (.*)$/gm)) m.set(Number(x[1]), JSON.parse(x[2]!));
    return m;
  }

  it('dp_shard=2 × ulysses=2: each sub-group is exactly the right ranks', async () => {
    const cfg = JSON.stringify({ dp_shard: 2, ulysses: 2 });
    const r = await run([
      '--nproc-per-node',
      '4',
      '--master-port',
      '0',
      ranks('mesh.mjs'),
      cfg,
      'dp_shard',
      'ulysses',
      'dp',
    ]);
    expect(r.result.exitCode).toBe(0);
    const m = met(r.out());
    expect(m.size).toBe(4);
    const expected: Record<number, Record<string, number[]>> = {
      0: { world: [0, 1, 2, 3], dp_shard: [0, 2], ulysses: [0, 1], dp: [0, 2] },
      1: { world: [0, 1, 2, 3], dp_shard: [1, 3], ulysses: [0, 1], dp: [1, 3] },
      2: { world: [0, 1, 2, 3], dp_shard: [0, 2], ulysses: [2, 3], dp: [0, 2] },
      3: { world: [0, 1, 2, 3], dp_shard: [1, 3], ulysses: [2, 3], dp: [1, 3] },
    };
    for (const rank of [0, 1, 2, 3]) expect(m.get(rank)).toEqual(expected[rank]);
  });

  it('ep_fsdp=2 × ep=2: the expert mesh groups are exactly the right ranks', async () => {
    const cfg = JSON.stringify({ dp_shard: 4, ep: 2 });
    const r = await run(['--nproc-per-node', '4', '--master-port', '0', ranks('mesh.mjs'), cfg, 'ep', 'ep_fsdp']);
    expect(r.result.exitCode).toBe(0);
    const m = met(r.out());
    for (const rank of [0, 1, 2, 3]) {
      expect(m.get(rank)!.ep).toEqual(rank < 2 ? [0, 1] : [2, 3]);
      expect(m.get(rank)!.ep_fsdp).toEqual(rank % 2 === 0 ? [0, 2] : [1, 3]);
    }
  });

  it('without a launcher, rank 0 hosts the store in a worker thread and keeps it up until a slow rank 1 is done', async () => {
    const { spawn } = await import('node:child_process');
    const probe = await (await import('@omnitrain/core')).TcpStoreServer.start({ port: 0, secret: 'p' });
    const port = probe.port;
    await probe.close();
    const outs = await Promise.all(
      [0, 1].map(
        (rank) =>
          new Promise<string>((resolve) => {
            const env = {
              ...cleanEnv(),
              RANK: String(rank),
              WORLD_SIZE: '2',
              MASTER_PORT: String(port),
              OMNITRAIN_STORE_SECRET: 'manual-secret',
              MESH_SLOW_RANK: '1',
            };
            const p = spawn(process.execPath, [ranks('mesh.mjs'), '{}'], { env: env as NodeJS.ProcessEnv });
            let s = '';
            p.stdout.on('data', (d) => {
              s += d;
            });
            p.stderr.on('data', (d) => {
              s += d;
            });
            p.on('exit', (code) => resolve(`${s}exit ${code}`));
          }),
      ),
    );
    for (const o of outs) {
      expect(o).toContain('MET {"world":[0,1]}');
      expect(o).toContain('exit 0');
    }
  });
});

describe('omnitrain command line', () => {
  it('unknown flags and a missing script are helpful errors', async () => {
    const a = capture();
    expect(await main(['launch', '--nproc-per-nod', '2', ranks('env.mjs')], a.io)).toBe(2);
    expect(a.err()).toContain("unknown option '--nproc-per-nod' (did you mean --nproc-per-node?)");
    const b = capture();
    expect(await main(['launch', '--nproc-per-node', '2'], b.io)).toBe(2);
    expect(b.err()).toContain('no script given');
    const c = capture();
    expect(await main(['launch', 'does-not-exist.js'], c.io)).toBe(2);
    expect(c.err()).toMatch(/script not found: does-not-exist\.js \(looked for .*does-not-exist\.js\)/);
    const d = capture();
    expect(await main(['launch', '--nproc-per-node', 'two', ranks('env.mjs')], d.io)).toBe(2);
    expect(d.err()).toContain("--nproc-per-node expects an integer >= 1, got 'two'");
    const e = capture();
    expect(await main(['lunch'], e.io)).toBe(2);
    expect(e.err()).toContain("unknown command 'lunch'");
    const f = capture();
    expect(await main(['launch', '--help'], f.io)).toBe(0);
    expect(f.out()).toContain('--nproc-per-node N');
  });

  it('reads Slurm variables: nodes, node rank, first host of the node list, secret required', () => {
    const script = ranks('env.mjs');
    const slurm = {
      SLURM_JOB_ID: '42',
      SLURM_NNODES: '4',
      SLURM_NTASKS: '4',
      SLURM_NODEID: '2',
      SLURM_STEP_NODELIST: 'gpu[07-10],cpu1',
    };
    expect(() => parseLaunchArgs(['--nproc-per-node', '8', script], slurm)).toThrow(/OMNITRAIN_STORE_SECRET/);
    const o = parseLaunchArgs(['--nproc-per-node', '8', script], { ...slurm, OMNITRAIN_STORE_SECRET: 's' })!;
    expect(o).toMatchObject({
      nnodes: 4,
      nodeRank: 2,
      worldSize: 32,
      firstRank: 16,
      masterAddr: 'gpu07',
      hostsStore: false,
    });
    expect(o.source).toBe('slurm');
    // one Slurm task per rank
    const t = parseLaunchArgs([script], {
      ...slurm,
      SLURM_NTASKS: '8',
      SLURM_PROCID: '5',
      SLURM_LOCALID: '1',
      SLURM_NODEID: '1',
      SLURM_NTASKS_PER_NODE: '2',
      OMNITRAIN_STORE_SECRET: 's',
    })!;
    expect(t).toMatchObject({ worldSize: 8, firstRank: 5, firstLocalRank: 1, nprocPerNode: 1, localWorldSize: 2 });
    // flags win over Slurm
    const f = parseLaunchArgs(['--master-addr', 'head', '--nnodes', '2', '--node-rank', '0', script], {
      ...slurm,
      OMNITRAIN_STORE_SECRET: 's',
    })!;
    expect(f).toMatchObject({ nnodes: 2, nodeRank: 0, masterAddr: 'head', hostsStore: true });
  });

  const bin = fileURLToPath(new URL('../bin/omnitrain.js', import.meta.url));
  const built = existsSync(fileURLToPath(new URL('../dist/cli.js', import.meta.url)));
  it.skipIf(!built)('the built bin runs a launch', () => {
    const r = spawnSync(
      process.execPath,
      [bin, 'launch', '--nproc-per-node', '2', '--master-port', '0', ranks('fail.mjs')],
      {
        encoding: 'utf8',
        env: cleanEnv() as NodeJS.ProcessEnv,
        timeout: 20_000,
      },
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('[rank 0] waiting');
    expect(r.stderr).toMatch(/rank 1 .*exited with code 3/);
  });

  it.skipIf(!built)('SIGTERM to the launcher stops every rank and exits 143', async () => {
    const { spawn } = await import('node:child_process');
    const p = spawn(
      process.execPath,
      [bin, 'launch', '--nproc-per-node', '2', '--master-port', '0', ranks('sleep.mjs')],
      {
        env: cleanEnv() as NodeJS.ProcessEnv,
      },
    );
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      err += d;
    });
    while ((out.match(/\] up pid/g) ?? []).length < 2) await new Promise((r) => setTimeout(r, 50));
    const pids = [...out.matchAll(/up pid (\d+)/g)].map((m) => Number(m[1]));
    const t0 = Date.now();
    p.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
    expect(code).toBe(143);
    expect(err).toContain('stopped by SIGTERM');
    expect(Date.now() - t0).toBeLessThan(5000);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(pids.filter(alive)).toEqual([]);
  });
});
