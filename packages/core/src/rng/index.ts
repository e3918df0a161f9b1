// Counter-based random numbers (Philox4x32-10): reproducible per element, independent of sharding.

export {
  drawValues,
  type FillRange,
  fillNormal,
  fillUniform,
  normal,
  normal_,
  type RandomDraw,
  type RandomOptions,
  rand,
  randn,
  replayDraw,
  uniform,
  uniform_,
} from './fill.js';
export { defaultGenerator, Generator, type GeneratorState, manualSeed, type Seed, streamId } from './generator.js';
export { philox4x32 } from './philox.js';
