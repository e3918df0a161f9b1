/**
 * @omnitrain/core/testing — the backend conformance suite: every op of core run through a registry's
 * best kernels and compared with core's reference CPU kernels.
 * @packageDocumentation
 */
export {
  assertConformance,
  type CaseRandom,
  type ConformanceCase,
  type ConformanceOptions,
  type ConformanceResult,
  conformanceCases,
  DEFAULT_TOLERANCES,
  REFERENCE_SOURCE,
  referenceKernelIn,
  runConformance,
  type Tolerance,
  uncoveredOps,
} from './conformance.js';
