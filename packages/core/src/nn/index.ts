// nn: modules, parameters and initialisers (exported as the `nn` namespace).

export { ModuleDict, ModuleList } from './container.js';
export * as init from './init.js';
export { Embedding, LayerNorm, type LayerOptions, Linear, RMSNorm } from './layers.js';
export {
  type BackwardPreHook,
  type ForwardHook,
  type ForwardPreHook,
  type FullBackwardHook,
  type LoadStateDictResult,
  Module,
  type RemovableHandle,
  type ToTarget,
} from './module.js';
export { Buffer, buffer, Parameter, parameter } from './parameter.js';
