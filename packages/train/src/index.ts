/**
 * @omnitrain/train — the omnitrain command: launcher, config-driven training, metrics.
 * @packageDocumentation
 */
import type { Plugin } from '@omnitrain/core';
import { TRAIN_VERSION } from './version.js';

export { type CliIO, main, USAGE } from './cli.js';
export { CONFIG_KEYS, ConfigError, loadConfig, parseOverrides, resolveConfig, type TrainConfig } from './config.js';
export { type DoctorImporter, doctor } from './doctor.js';
export { generateText, loadForGeneration, resolveModelDir } from './generate-cmd.js';
export { LAUNCH_USAGE, type LaunchOptions, parseLaunchArgs, UsageError } from './launch-args.js';
export {
  describeFailure,
  type LaunchIO,
  type LaunchResult,
  launch,
  type RankFailure,
  type RunningLaunch,
  startLaunch,
} from './launcher.js';
export { plotRun, readMetrics } from './plot.js';
export { Canvas } from './png.js';
export {
  type FlopsModelShape,
  flopsPerToken,
  formatDuration,
  formatMfu,
  type ProgressInfo,
  ProgressReporter,
  type ProgressStream,
  renderLogLine,
  renderProgressBar,
} from './progress.js';
export { firstHostOfNodelist } from './slurm.js';
export {
  type LaneState,
  loadTokenizer,
  type StepRows,
  TrainData,
  type TrainDataOptions,
} from './train-data.js';
export {
  latestTrainState,
  loadTrainState,
  readTrainMeta,
  saveTrainState,
  type TrainMeta,
  type TrainStateParts,
} from './train-state.js';
export {
  batchRows,
  listCheckpoints,
  loadCorpusBytes,
  type MetricsRecord,
  NonFiniteError,
  peakFlopsPerRank,
  runTraining,
  type TrainIO,
  type TrainResult,
} from './trainer.js';
export { TRAIN_VERSION } from './version.js';

/** The plugin object: `registry.use(plugin)` registers everything this package provides. */
export const plugin: Plugin = {
  name: 'train',
  version: TRAIN_VERSION,
  coreRange: '^0.1',
  setup() {},
};
