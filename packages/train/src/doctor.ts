import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CORE_VERSION, defaultRegistry } from '@omnitrain/core';

const PACKAGES = [
  '@omnitrain/core',
  '@omnitrain/models',
  '@omnitrain/data',
  '@omnitrain/checkpoint',
  '@omnitrain/parallel-fsdp',
  '@omnitrain/comm-gloo',
  '@omnitrain/kernels-cpu',
  '@omnitrain/train',
];

/** `omnitrain doctor`: what this machine and installation can run, as text lines. */
export async function doctor(): Promise<string[]> {
  const out: string[] = [];
  out.push(
    `node: ${process.version} (${process.platform} ${process.arch})${Number(process.versions.node.split('.')[0]) < 22 ? '  PROBLEM: omnitrain needs Node >= 22.12' : ''}`,
  );
  out.push(`core: ${CORE_VERSION}`);
  const require = createRequire(import.meta.url);
  out.push('packages:');
  for (const p of PACKAGES) {
    let v = 'not installed';
    try {
      const main = require.resolve(p);
      let dir = main;
      for (let i = 0; i < 4; i++) {
        dir = dir.slice(0, dir.lastIndexOf('/'));
        if (existsSync(`${dir}/package.json`)) {
          v = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')).version;
          break;
        }
      }
    } catch {
      try {
        v = (await import(`${p}/package.json`, { with: { type: 'json' } })).default.version;
      } catch {}
    }
    out.push(`  ${p.padEnd(26)} ${v}`);
  }
  out.push('backends:');
  try {
    const k = await import('@omnitrain/kernels-cpu');
    const st = k.nativeStatus();
    out.push(`  kernels cpu native: ${st.available ? `available (${st.message})` : `unavailable: ${st.message}`}`);
  } catch (e) {
    out.push(`  kernels cpu native: unavailable: ${(e as Error).message}`);
  }
  try {
    const g = await import('@omnitrain/comm-gloo');
    const r = defaultRegistry();
    if (!r.processGroups.has('gloo')) r.use(g.plugin);
    const status = (g as Record<string, unknown>).glooStatus as
      | (() => { available: boolean; message: string })
      | undefined;
    const st = status?.();
    out.push(
      `  process group gloo: ${st ? (st.available ? 'available' : `unavailable: ${st.message}`) : 'registered (loaded at first use)'}`,
    );
  } catch (e) {
    out.push(`  process group gloo: unavailable: ${(e as Error).message}`);
  }
  const r = defaultRegistry();
  for (const load of [
    () => import('@omnitrain/models'),
    () => import('@omnitrain/checkpoint'),
    () => import('@omnitrain/parallel-fsdp'),
  ]) {
    try {
      const m = await load();
      if (!r.plugins().some((p) => p.name === m.plugin.name)) r.use(m.plugin);
    } catch (e) {
      out.push(`  (a plugin failed to load: ${(e as Error).message})`);
    }
  }
  out.push(
    `  installed plugins: ${r
      .plugins()
      .map((p) => `${p.name}@${p.version}`)
      .join(', ')}`,
  );
  for (const [what, cat] of [
    ['process groups', r.processGroups],
    ['parallel strategies', r.parallel],
    ['checkpoint formats', r.checkpointFormats],
    ['models', r.models],
  ] as const) {
    out.push(`  registered ${what}: ${cat.names().join(', ') || '(none)'}`);
  }
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const model = /model name\s*:\s*(.*)/.exec(info)?.[1] ?? 'unknown';
    const flags = new Set((/flags\s*:\s*(.*)/.exec(info)?.[1] ?? '').split(/\s+/));
    const interesting = [
      'sse4_2',
      'avx',
      'avx2',
      'fma',
      'f16c',
      'avx512f',
      'avx512bw',
      'avx512_bf16',
      'amx_tile',
    ].filter((f) => flags.has(f));
    const cores = (info.match(/^processor\s*:/gm) ?? []).length;
    out.push(`cpu: ${model}, ${cores} logical cores, features: ${interesting.join(' ') || '(none of interest)'}`);
  } catch {
    out.push('cpu: /proc/cpuinfo not readable');
  }
  try {
    const smi = execFileSync('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 10_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const gpus = smi.trim().split('\n').filter(Boolean);
    out.push(`gpus: ${gpus.length}`);
    for (const g of gpus) out.push(`  ${g}`);
  } catch {
    out.push('gpus: none found (nvidia-smi not available)');
  }
  return out;
}
