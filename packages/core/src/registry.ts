import type { Backend } from './backend.js';
import { Catalog } from './catalog.js';
import { parseDevice } from './device.js';
import type { Tensor } from './tensor.js';

/** A kernel: computes an op's outputs on one backend. `attrs` are the op's non-tensor arguments. */
export type Kernel = (inputs: Tensor[], attrs: any) => Tensor | Tensor[];

/** A registered kernel with its priority (higher wins) and who provided it. */
export interface KernelEntry {
  readonly kernel: Kernel;
  readonly priority: number;
  readonly source: string;
}

/** A package that registers backends, kernels, strategies, formats... into a registry. */
export interface Plugin {
  /** Unique name, e.g. `kernels-cpu`. */
  readonly name: string;
  /** Package version, shown by `omnitrain doctor`. */
  readonly version?: string;
  /** Semver range of core this plugin was built for. */
  readonly coreRange?: string;
  /** Register everything. Must not load native code; that happens on first use. */
  setup(registry: Registry): void;
}

/** Everything that plugins provide, looked up by name. */
export class Registry {
  private readonly backendMap = new Map<string, Backend>();
  private readonly kernelMap = new Map<string, KernelEntry[]>();
  private readonly pluginMap = new Map<string, Plugin>();
  /** Process-group backends (`gloo`, `nccl`). */
  readonly processGroups = new Catalog<unknown>('process-group backend');
  /** Parallel strategies (`fsdp`, `ulysses`, `ep`). */
  readonly parallel = new Catalog<unknown>('parallel strategy');
  /** Modality encoders by name. */
  readonly encoders = new Catalog<unknown>('modality encoder');
  /** Modality decoders by name. */
  readonly decoders = new Catalog<unknown>('modality decoder');
  /** Checkpoint formats (`dcp`, `hf-safetensors`). */
  readonly checkpointFormats = new Catalog<unknown>('checkpoint format');
  /** Model architectures by Hugging Face `model_type`. */
  readonly models = new Catalog<unknown>('model architecture');

  /** Install a plugin once; installing the same name again is a no-op. */
  use(plugin: Plugin): this {
    if (this.pluginMap.has(plugin.name)) return this;
    this.pluginMap.set(plugin.name, plugin);
    plugin.setup(this);
    return this;
  }

  /** Installed plugins in installation order. */
  plugins(): Plugin[] {
    return [...this.pluginMap.values()];
  }

  /** Register a device backend under its name. */
  registerBackend(backend: Backend): void {
    this.backendMap.set(backend.name, backend);
  }

  /** The backend owning `device` (e.g. `cuda:1` -> the `cuda` backend). */
  backend(device: string): Backend {
    const { backend } = parseDevice(device);
    const b = this.backendMap.get(backend);
    if (!b) {
      throw new Error(
        `no backend for device '${device}'; registered: ${[...this.backendMap.keys()].join(', ') || '(none)'}` +
          (backend === 'cuda' ? " (install and register '@omnitrain/kernels-cuda')" : ''),
      );
    }
    return b;
  }

  /** Names of registered backends. */
  backendNames(): string[] {
    return [...this.backendMap.keys()];
  }

  /** Register `kernel` for `op` on `backend`; among several, the highest priority is used. */
  registerKernel(backend: string, op: string, kernel: Kernel, opts: { priority?: number; source?: string } = {}): void {
    const key = `${backend}\u0000${op}`;
    const list = this.kernelMap.get(key) ?? [];
    list.push({ kernel, priority: opts.priority ?? 0, source: opts.source ?? 'unknown' });
    list.sort((a, b) => b.priority - a.priority);
    this.kernelMap.set(key, list);
  }

  /** All kernels for `op` on `backend`, best first. */
  kernels(backend: string, op: string): readonly KernelEntry[] {
    return this.kernelMap.get(`${backend}\u0000${op}`) ?? [];
  }

  /** The kernel that runs `op` on `device`, or an error naming what is registered. */
  kernel(op: string, device: string): Kernel {
    const { backend } = parseDevice(device);
    const best = this.kernels(backend, op)[0];
    if (best) return best.kernel;
    const where = [...this.kernelMap.keys()].filter((k) => k.endsWith(`\u0000${op}`)).map((k) => k.split('\u0000')[0]);
    throw new Error(
      `no kernel '${op}' for device '${device}'; registered: ${where.length ? where.join(', ') : '(none)'}`,
    );
  }

  /** Ops that have at least one kernel on `backend`. */
  ops(backend: string): string[] {
    return [...this.kernelMap.keys()]
      .filter((k) => k.startsWith(`${backend}\u0000`))
      .map((k) => k.split('\u0000')[1]!)
      .sort();
  }
}

const GLOBAL_KEY = Symbol.for('omnitrain.registry');
let current: Registry | null = null;
let installDefaults: ((r: Registry) => void) | null = null;

/** Core calls this once so the default registry starts with core's own backends and kernels. */
export function setDefaultRegistryInit(init: (r: Registry) => void): void {
  installDefaults = init;
}

/** The process-wide default registry, shared through `globalThis` even across copies of core. */
export function defaultRegistry(): Registry {
  const g = globalThis as unknown as Record<symbol, Registry | undefined>;
  let r = g[GLOBAL_KEY];
  if (!r) {
    r = new Registry();
    installDefaults?.(r);
    g[GLOBAL_KEY] = r;
  }
  return r;
}

/** The registry ops dispatch through: the one set by `withRegistry`, else the default. */
export function getRegistry(): Registry {
  return current ?? defaultRegistry();
}

/** Run `fn` with `registry` as the one ops dispatch through (tests use fresh registries). */
export function withRegistry<T>(registry: Registry, fn: () => T): T {
  const prev = current;
  current = registry;
  try {
    return fn();
  } finally {
    current = prev;
  }
}
