import { LAUNCH_USAGE, parseLaunchArgs, UsageError } from './launch-args.js';
import { startLaunch } from './launcher.js';
import { TRAIN_VERSION } from './version.js';

/** Usage of the `omnitrain` command. */
export const USAGE = `Usage: omnitrain <command> [options]

Commands:
  launch     start a distributed job: one process per rank (omnitrain launch --help)

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
