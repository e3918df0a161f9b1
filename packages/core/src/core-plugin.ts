import { CpuBackend } from './backends/cpu-backend.js';
import { MetaBackend } from './backends/meta-backend.js';
import { registerReferenceCpuKernels } from './kernels/cpu/index.js';
import { type Plugin, Registry, setDefaultRegistryInit } from './registry.js';
import { CORE_VERSION } from './version.js';

/** Core's own plugin: the `cpu` and `meta` backends and the reference CPU kernels. */
export const corePlugin: Plugin = {
  name: 'core',
  version: CORE_VERSION,
  setup(r) {
    r.registerBackend(new CpuBackend());
    r.registerBackend(new MetaBackend());
    registerReferenceCpuKernels(r);
  },
};

/** A fresh registry with only core installed (for tests and isolated runs). */
export function createRegistry(): Registry {
  return new Registry().use(corePlugin);
}

setDefaultRegistryInit((r) => r.use(corePlugin));
