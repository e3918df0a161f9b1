import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { firstHostOfNodelist } from './slurm.js';

/** Everything `omnitrain launch` needs, after flags, Slurm variables and defaults were combined. */
export interface LaunchOptions {
  /** Ranks this launcher starts. */
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  /** Total number of ranks (normally nnodes × nprocPerNode). */
  worldSize: number;
  /** Global rank of this launcher's first rank (normally nodeRank × nprocPerNode). */
  firstRank: number;
  /** LOCAL_RANK of this launcher's first rank (normally 0). */
  firstLocalRank: number;
  /** LOCAL_WORLD_SIZE (normally nprocPerNode). */
  localWorldSize: number;
  masterAddr: string;
  /** 0 picks a free port (one node only). */
  masterPort: number;
  /** True for the launcher that hosts the TCP store (node 0). */
  hostsStore: boolean;
  /** Whole-group restarts allowed after a failure. */
  maxRestarts: number;
  /** Time between SIGTERM and SIGKILL when stopping ranks. */
  gracePeriodMs: number;
  /** Absolute path of the script each rank runs. */
  script: string;
  scriptArgs: string[];
  /** Extra arguments for `node` before the script. */
  nodeArgs: string[];
  /** Store secret (OMNITRAIN_STORE_SECRET); generated when absent on one node. */
  secret: string | undefined;
  /** Where the values came from, for the start-up line. */
  source: 'flags' | 'slurm';
}

/** A command-line mistake; the CLI prints its message and the usage, and exits 2. */
export class UsageError extends Error {}

/** Usage text of `omnitrain launch`. */
export const LAUNCH_USAGE = `Usage: omnitrain launch [options] <script.js|script.ts> [script args...]

Starts one process per rank with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK,
MASTER_ADDR, MASTER_PORT and OMNITRAIN_STORE_SECRET set, hosts the TCP store on node 0, prefixes
each output line with [rank N], and stops every rank when one fails.

Options:
  --nproc-per-node N    ranks on this node (default 1)
  --nnodes M            number of nodes (default 1, or SLURM_NNODES)
  --node-rank R         this node's index (default 0, or SLURM_NODEID)
  --master-addr A       host of the TCP store (default 127.0.0.1, or the first host of SLURM_STEP_NODELIST)
  --master-port P       port of the TCP store (default 29500; 0 picks a free one on one node)
  --max-restarts K      restart the whole group up to K times after a failure (default 0)
  --grace-period S      seconds between SIGTERM and SIGKILL when stopping ranks (default 5)
  --node-arg ARG        extra argument for node, repeatable (e.g. --node-arg=--inspect)
  -h, --help            show this help
Several nodes need the same OMNITRAIN_STORE_SECRET in every launcher's environment.`;

const FLAGS = [
  'nproc-per-node',
  'nnodes',
  'node-rank',
  'master-addr',
  'master-port',
  'max-restarts',
  'grace-period',
  'node-arg',
  'help',
] as const;
type Flag = (typeof FLAGS)[number];

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

function intFlag(flag: string, v: string, min: number): number {
  const n = Number(v);
  if (v === '' || !Number.isInteger(n) || n < min)
    throw new UsageError(`--${flag} expects an integer >= ${min}, got '${v}'`);
  return n;
}

function intEnv(env: Record<string, string | undefined>, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number.parseInt(v, 10);
  return Number.isInteger(n) ? n : undefined;
}

function gracePeriod(v: string): number {
  const s = Number(v);
  if (v === '' || !Number.isFinite(s) || s < 0) throw new UsageError(`--grace-period expects seconds >= 0, got '${v}'`);
  return Math.round(s * 1000);
}

/** Parse `omnitrain launch` arguments (after the subcommand); `null` means help was asked for. */
export function parseLaunchArgs(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
  cwd = process.cwd(),
): LaunchOptions | null {
  const given = new Map<Flag, string>();
  const nodeArgs: string[] = [];
  let i = 0;
  let script: string | undefined;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '-h' || a === '--help') return null;
    if (!a.startsWith('-')) break;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a.replace(/_/g, '-'));
    const name = m?.[1];
    if (!m || !(FLAGS as readonly string[]).includes(name!)) {
      const raw = a.replace(/^-+/, '').split('=')[0]!;
      const best = [...FLAGS].sort((x, y) => editDistance(raw, x) - editDistance(raw, y))[0]!;
      const hint = editDistance(raw, best) <= 3 ? ` (did you mean --${best}?)` : '';
      throw new UsageError(`unknown option '${a}'${hint}`);
    }
    let value = m[2];
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      i++;
    }
    if (name === 'node-arg') nodeArgs.push(value);
    else given.set(name as Flag, value);
  }
  script = argv[i];
  if (script === undefined)
    throw new UsageError('no script given: omnitrain launch [options] <script.js|script.ts> [args]');
  const scriptPath = resolve(cwd, script);
  if (!existsSync(scriptPath) || !statSync(scriptPath).isFile()) {
    throw new UsageError(`script not found: ${script} (looked for ${scriptPath})`);
  }
  const scriptArgs = argv.slice(i + 1);

  const slurm =
    env.SLURM_JOB_ID !== undefined && (env.SLURM_NNODES !== undefined || env.SLURM_JOB_NUM_NODES !== undefined);
  const nprocGiven = given.has('nproc-per-node');
  let nprocPerNode = nprocGiven ? intFlag('nproc-per-node', given.get('nproc-per-node')!, 1) : 1;
  let nnodes = given.has('nnodes') ? intFlag('nnodes', given.get('nnodes')!, 1) : 1;
  let nodeRank = given.has('node-rank') ? intFlag('node-rank', given.get('node-rank')!, 0) : 0;
  let masterAddr = given.get('master-addr') ?? env.MASTER_ADDR ?? '127.0.0.1';
  let source: LaunchOptions['source'] = 'flags';
  let worldSize: number;
  let firstRank: number;
  let firstLocalRank = 0;
  let localWorldSize: number;
  if (slurm) {
    source = 'slurm';
    const sNodes = intEnv(env, 'SLURM_NNODES') ?? intEnv(env, 'SLURM_JOB_NUM_NODES') ?? 1;
    const sTasks = intEnv(env, 'SLURM_NTASKS') ?? sNodes;
    const nodelist = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
    if (!given.has('master-addr') && nodelist) masterAddr = firstHostOfNodelist(nodelist);
    if (sTasks > sNodes && !nprocGiven) {
      // srun started one task per rank: each launcher runs exactly its own rank.
      nprocPerNode = 1;
      nnodes = sNodes;
      nodeRank = given.has('node-rank') ? nodeRank : (intEnv(env, 'SLURM_NODEID') ?? 0);
      worldSize = sTasks;
      firstRank = intEnv(env, 'SLURM_PROCID') ?? 0;
      firstLocalRank = intEnv(env, 'SLURM_LOCALID') ?? 0;
      localWorldSize = intEnv(env, 'SLURM_NTASKS_PER_NODE') ?? Math.ceil(sTasks / sNodes);
    } else {
      if (sTasks > sNodes) {
        throw new UsageError(
          `Slurm started ${sTasks} tasks on ${sNodes} nodes, but --nproc-per-node starts several ranks per launcher; ` +
            'run one launcher per node (srun --ntasks-per-node=1) or drop --nproc-per-node',
        );
      }
      if (!given.has('nnodes')) nnodes = sNodes;
      if (!given.has('node-rank')) nodeRank = intEnv(env, 'SLURM_NODEID') ?? intEnv(env, 'SLURM_PROCID') ?? 0;
      worldSize = nnodes * nprocPerNode;
      firstRank = nodeRank * nprocPerNode;
      localWorldSize = nprocPerNode;
    }
  } else {
    worldSize = nnodes * nprocPerNode;
    firstRank = nodeRank * nprocPerNode;
    localWorldSize = nprocPerNode;
  }
  if (nodeRank >= nnodes) throw new UsageError(`--node-rank ${nodeRank} must be below --nnodes ${nnodes}`);
  const masterPort = given.has('master-port')
    ? intFlag('master-port', given.get('master-port')!, 0)
    : (intEnv(env, 'MASTER_PORT') ?? 29500);
  if (masterPort > 65535) throw new UsageError(`--master-port ${masterPort} is not a TCP port`);
  if (masterPort === 0 && worldSize > nprocPerNode) {
    throw new UsageError('--master-port 0 (a free port) only works on one node; give every node the same port');
  }
  const multi = worldSize > nprocPerNode;
  const secret = env.OMNITRAIN_STORE_SECRET || undefined;
  if (multi && !secret) {
    throw new UsageError(
      'several nodes need one shared store secret: export OMNITRAIN_STORE_SECRET=$(openssl rand -hex 16) ' +
        'in the environment of every launcher',
    );
  }
  return {
    nprocPerNode,
    nnodes,
    nodeRank,
    worldSize,
    firstRank,
    firstLocalRank,
    localWorldSize,
    masterAddr,
    masterPort,
    hostsStore: firstRank === 0,
    maxRestarts: given.has('max-restarts') ? intFlag('max-restarts', given.get('max-restarts')!, 0) : 0,
    gracePeriodMs: given.has('grace-period') ? gracePeriod(given.get('grace-period')!) : 5000,
    script: scriptPath,
    scriptArgs,
    nodeArgs,
    secret,
    source,
  };
}
