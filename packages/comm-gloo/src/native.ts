import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** A typed array over a tensor's own memory. */
export type NativeBuffer = Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array;

/** A native Work handle. */
export interface NativeWork {
  wait(): void;
  isCompleted(): boolean;
}

/** What `new Group(...)` of the addon takes. */
export interface NativeGroupConfig {
  host: string;
  port: number;
  secret: string;
  prefix: string;
  name: string;
  rank: number;
  size: number;
  ranks: number[];
  timeoutMs: number;
  bindHost?: string;
  iface?: string;
  rsViaAllreduce?: boolean;
  segmentBytes?: number;
  spinMicros?: number;
}

/** A native Gloo process group (see native/addon.cc). */
export interface NativeGroup {
  allReduce(t: NativeBuffer, dtype: number, op: number): NativeWork;
  allGather(out: NativeBuffer, input: NativeBuffer, bytesPerRank: number[], even: boolean): NativeWork;
  reduceScatter(out: NativeBuffer, input: NativeBuffer, counts: number[], dtype: number, op: number): NativeWork;
  allToAll(out: NativeBuffer, input: NativeBuffer, outBytes: number[], inBytes: number[], even: boolean): NativeWork;
  broadcast(t: NativeBuffer, root: number): NativeWork;
  barrier(): NativeWork;
  send(t: NativeBuffer, dst: number, tag: number): NativeWork;
  recv(t: NativeBuffer, src: number, tag: number): NativeWork;
  destroy(): void;
}

/** The loaded addon. */
export interface NativeBinding {
  Group: new (config: NativeGroupConfig) => NativeGroup;
  glooVersion: string;
}

const addonPath = fileURLToPath(new URL('../native/build/Release/omnitrain_comm_gloo.node', import.meta.url));
const statusPath = fileURLToPath(new URL('../native/build/native-status.json', import.meta.url));
let cached: { binding?: NativeBinding; why?: string } | null = null;

function whyMissing(): string {
  try {
    const s = JSON.parse(readFileSync(statusPath, 'utf8')) as { ok: boolean; reason: string };
    if (!s.ok) return s.reason;
  } catch {}
  return `${addonPath} is missing: run \`pnpm build\` in packages/comm-gloo (needs g++, libgloo-dev and Node headers)`;
}

/** Load the addon on first use; never throws, returns why it is unavailable instead. */
export function tryLoadNative(): { binding?: NativeBinding; why?: string } {
  if (cached) return cached;
  try {
    if (!existsSync(addonPath)) cached = { why: whyMissing() };
    else cached = { binding: createRequire(import.meta.url)(addonPath) as NativeBinding };
  } catch (e) {
    cached = { why: `loading ${addonPath} failed: ${(e as Error).message}` };
  }
  return cached;
}

/** The addon, or an error "backend unavailable: <why>". */
export function loadNative(): NativeBinding {
  const r = tryLoadNative();
  if (!r.binding) throw new Error(`gloo backend unavailable: ${r.why}`);
  return r.binding;
}
