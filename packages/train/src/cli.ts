import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CONFIG_KEYS, ConfigError, loadConfig, parseOverrides } from './config.js';
import { doctor } from './doctor.js';
import { generateText } from './generate-cmd.js';
import { LAUNCH_USAGE, parseLaunchArgs, UsageError } from './launch-args.js';
import { startLaunch } from './launcher.js';
import { plotRun } from './plot.js';
import { NonFiniteError, runTraining } from './trainer.js';
import { TRAIN_VERSION } from './version.js';

/** Usage of the `omnitrain` command. */
export const USAGE = `Usage: omnitrain <command> [options]

Commands:
  launch     start a distributed job: one process per rank (omnitrain launch --help)
  train      train from a YAML config: omnitrain train CONFIG [--nproc-per-node N] [--profile] [--section.key value ...]
  plot       draw a run's loss and tokens/s curves: omnitrain plot RUN_DIR [--out FILE]
  generate   sample text: omnitrain generate --checkpoint DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--seed S]
  doctor     report Node, installed plugins, backend availability, CPU features and GPUs

Options:
  -h, --help     show this help
  -v, --version  print the version`;

/** Where the CLI writes. */
export interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env?: Record<string, string | undefined>;
}

/**
 * Run the `omnitrain` command with `argv` (without `node` and the script) and return its exit code.
 * With `handleSignals`, SIGINT/SIGTERM/SIGHUP of the launcher stop every rank before it exits.
 */
export async function main(
  argv: readonly string[],
  io: CliIO = { stdout: process.stdout, stderr: process.stderr },
  handleSignals = false,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '-v' || command === '--version') {
    io.stdout.write(`${TRAIN_VERSION}\n`);
    return 0;
  }
  if (command === 'train') return trainCommand(rest, io, handleSignals);
  if (command === 'plot')
    return guarded('plot', io, async () => {
      const { values, positionals } = parseArgs({
        args: [...rest],
        options: { out: { type: 'string' } },
        allowPositionals: true,
      });
      if (positionals.length !== 1) throw new UsageError('plot needs exactly one RUN_DIR');
      io.stdout.write(`plot: wrote ${plotRun(positionals[0]!, values.out)}\n`);
    });
  if (command === 'doctor')
    return guarded('doctor', io, async () => {
      io.stdout.write(`${(await doctor()).join('\n')}\n`);
    });
  if (command === 'generate')
    return guarded('generate', io, async () => {
      const { values } = parseArgs({
        args: [...rest],
        options: {
          checkpoint: { type: 'string' },
          prompt: { type: 'string', default: '' },
          'max-new-tokens': { type: 'string', default: '200' },
          temperature: { type: 'string', default: '0.8' },
          seed: { type: 'string', default: '0' },
        },
      });
      if (!values.checkpoint)
        throw new UsageError('generate needs --checkpoint DIR (a run folder, checkpoint or model folder)');
      const { modelDir, text } = generateText(values.checkpoint, values.prompt, {
        maxNewTokens: Number(values['max-new-tokens']),
        temperature: Number(values.temperature),
        seed: Number(values.seed),
      });
      io.stdout.write(`[model ${modelDir}]\n${text}\n`);
    });
  if (command !== 'launch') {
    io.stderr.write(`omnitrain: unknown command '${command}'\n\n${USAGE}\n`);
    return 2;
  }
  let opts: ReturnType<typeof parseLaunchArgs>;
  try {
    opts = parseLaunchArgs(rest, io.env ?? process.env);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`omnitrain launch: ${e.message}\n\n${LAUNCH_USAGE}\n`);
      return 2;
    }
    throw e;
  }
  if (opts === null) {
    io.stdout.write(`${LAUNCH_USAGE}\n`);
    return 0;
  }
  const running = startLaunch(opts, io);
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (sig: NodeJS.Signals) => running.stop(sig);
  if (handleSignals) for (const s of signals) process.on(s, onSignal);
  try {
    const result = await running.done;
    return result.exitCode;
  } catch (e) {
    io.stderr.write(`omnitrain launch: ${(e as Error).message}\n`);
    return 1;
  } finally {
    if (handleSignals) for (const s of signals) process.off(s, onSignal);
  }
}

async function guarded(name: string, io: CliIO, f: () => Promise<void>): Promise<number> {
  try {
    await f();
    return 0;
  } catch (e) {
    io.stderr.write(`omnitrain ${name}: ${(e as Error).message}\n`);
    return e instanceof UsageError || (e as Error).name === 'TypeError' ? 2 : 1;
  }
}

/** Usage of `omnitrain train`. */
export const TRAIN_USAGE = `Usage: omnitrain train CONFIG.yaml [--nproc-per-node N] [--section.key value ...]

Trains from a YAML config (see examples/train-demo/config.yaml). Any key can be overridden with a
dotted flag (--train.lr 3e-4, --parallel.dp_shard 2, --model.config.hidden_size 64).
--nproc-per-node N starts N local ranks through \`omnitrain launch\` (FSDP over the mesh).
--profile writes a Chrome trace of the first 3 steps to RUN_DIR/trace-rank<R>.json (= --train.profile 3).
Keys: ${CONFIG_KEYS.join(', ')}`;

const BIN = fileURLToPath(new URL('../bin/omnitrain.js', import.meta.url));

async function trainCommand(args: readonly string[], io: CliIO, handleSignals: boolean): Promise<number> {
  let nproc = 0;
  let parsed: ReturnType<typeof parseOverrides>;
  let config: ReturnType<typeof loadConfig>;
  const passOn: string[] = [];
  if (args.includes('-h') || args.includes('--help')) {
    io.stdout.write(`${TRAIN_USAGE}\n`);
    return 0;
  }
  try {
    const rest = [...args];
    const i = rest.findIndex((a) => a === '--nproc-per-node' || a.startsWith('--nproc-per-node='));
    if (i >= 0) {
      const [flag, v] = rest[i]!.includes('=') ? rest[i]!.split('=') : [rest[i]!, rest[i + 1]];
      nproc = Number(v);
      if (!Number.isInteger(nproc) || nproc < 1) throw new UsageError(`${flag} is '${v}'; allowed: an integer >= 1`);
      rest.splice(i, rest[i]!.includes('=') ? 1 : 2);
    }
    const p = rest.indexOf('--profile');
    if (p >= 0) rest.splice(p, 1, '--train.profile', '3');
    passOn.push(...rest);
    parsed = parseOverrides(rest);
    if (parsed.rest.length !== 1) {
      throw new UsageError(
        `train needs exactly one CONFIG file${parsed.rest.length > 1 ? ` (got ${parsed.rest.join(' ')})` : ''}; overrides look like --train.lr 3e-4`,
      );
    }
    config = loadConfig(parsed.rest[0]!, parsed.overrides);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      io.stderr.write(`omnitrain train: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (nproc > 0) {
    // Re-invoke `omnitrain train` once per rank under the launcher.
    const cfgPath = resolve(parsed.rest[0]!);
    const scriptArgs = ['train', ...passOn.map((a) => (a === parsed.rest[0] ? cfgPath : a))];
    const opts = parseLaunchArgs(
      // One node: a free port unless MASTER_PORT says otherwise (two runs on a machine must not collide).
      [
        '--nproc-per-node',
        String(nproc),
        '--master-port',
        (io.env ?? process.env).MASTER_PORT ?? '0',
        BIN,
        ...scriptArgs,
      ],
      io.env ?? process.env,
    );
    if (!opts) return 0;
    const running = startLaunch(opts, io);
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    const onSignal = (sig: NodeJS.Signals) => running.stop(sig);
    if (handleSignals) for (const s of signals) process.on(s, onSignal);
    try {
      return (await running.done).exitCode;
    } catch (e) {
      io.stderr.write(`omnitrain train: ${(e as Error).message}\n`);
      return 1;
    } finally {
      if (handleSignals) for (const s of signals) process.off(s, onSignal);
    }
  }
  try {
    await runTraining(config, {
      stdout: io.stdout as { write(s: string): unknown; isTTY?: boolean },
      stderr: io.stderr,
      env: io.env,
    });
    return 0;
  } catch (e) {
    const rank = (io.env ?? process.env).RANK;
    io.stderr.write(`omnitrain train${rank !== undefined ? ` (rank ${rank})` : ''}: ${(e as Error).message}\n`);
    return e instanceof NonFiniteError ? 3 : 1;
  }
}
