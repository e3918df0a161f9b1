import { tryLoadNative } from './native.js';

/**
 * Whether the `gloo` backend can run in this process: loads the native addon (once; never
 * throws) and says which Gloo it binds, or why it is unavailable (not built, failed to load...).
 * `omnitrain doctor` prints it.
 */
export function glooStatus(): { available: boolean; message: string } {
  const r = tryLoadNative();
  if (r.binding) return { available: true, message: `native addon loaded (Gloo ${r.binding.glooVersion})` };
  return { available: false, message: r.why ?? 'unknown reason' };
}
