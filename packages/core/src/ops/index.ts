// Every op: shape/dtype rules, dispatch to the registered kernel, and its gradient.

export * from './adamw-step.js';
export * from './attention.js';
export * from './cross-entropy.js';
export * from './dispatch.js';
export * from './elementwise.js';
export * from './embedding.js';
export * from './grouped-matmul.js';
export * from './layer-norm.js';
export * from './matmul.js';
export * from './reduce.js';
export * from './rms-norm.js';
export * from './rope.js';
export * from './shape.js';
export * from './swiglu.js';
