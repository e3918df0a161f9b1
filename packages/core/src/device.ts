/** Where a tensor lives: `cpu`, `cuda:N` (provided by the CUDA plugin) or `meta` (shape only). */
export type Device = 'cpu' | 'meta' | `cuda:${number}`;

/** Parsed device: the backend name that owns it and the index within that backend. */
export interface DeviceInfo {
  readonly backend: string;
  readonly index: number;
}

/** Parse and validate a device string; `cuda` means `cuda:0`. */
export function parseDevice(device: string): DeviceInfo {
  if (device === 'cpu' || device === 'meta') return { backend: device, index: 0 };
  const m = /^([a-z]+)(?::(\d+))?$/.exec(device);
  if (!m) throw new Error(`invalid device '${device}': expected 'cpu', 'meta' or 'cuda:N'`);
  return { backend: m[1]!, index: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Normalise a device string (`cuda` -> `cuda:0`). */
export function normalizeDevice(device: string): Device {
  const { backend, index } = parseDevice(device);
  return (backend === 'cpu' || backend === 'meta' ? backend : `${backend}:${index}`) as Device;
}
