export { type Coordinator, defaultCoordinator, processGroupCoordinator, storeCoordinator } from './coordinator.js';
export { checksumFunction, crc32c } from './crc32c.js';
export type { ChecksumKind, ChunkRecord, DcpMetadata, TensorRecord } from './job.js';
export {
  type CheckpointRef,
  findLatestCheckpoint,
  type LoadCheckpointOptions,
  type LoadResult,
  loadCheckpoint,
  METADATA_FILE,
  readMetadata,
  resumeCheckpoint,
  verifyCheckpoint,
} from './load.js';
export {
  releaseSaveBuffer,
  reserveSaveBuffer,
  type SaveHandle,
  type SaveOptions,
  saveCheckpoint,
  waitForPendingSave,
} from './save.js';
export { dim0Shard, isShardedTensor, type ShardedTensor, shardedTensor } from './sharded-tensor.js';
export type { StateTree, TensorLeaf } from './state-tree.js';

import { findLatestCheckpoint, loadCheckpoint, resumeCheckpoint, verifyCheckpoint } from './load.js';
import { saveCheckpoint, waitForPendingSave } from './save.js';

/**
 * The `dcp` checkpoint format as registered in `registry.checkpointFormats`: sharded, atomic,
 * checksummed checkpoints of a whole training state (see {@link saveCheckpoint},
 * {@link loadCheckpoint}, {@link resumeCheckpoint}).
 */
export const dcpFormat = {
  name: 'dcp',
  save: saveCheckpoint,
  load: loadCheckpoint,
  resume: resumeCheckpoint,
  findLatest: findLatestCheckpoint,
  verify: verifyCheckpoint,
  waitForPendingSave,
} as const;
