import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CORE_VERSION, defaultRegistry, type Plugin } from '@omnitrain/core';

/** The packages omnitrain knows; those installed are listed with their version. */
const PACKAGES = [
  '@omnitrain/core',
  '@omnitrain/models',
  '@omnitrain/data',
  '@omnitrain/checkpoint',
  '@omnitrain/parallel-fsdp',
  '@omnitrain/parallel-ulysses',
  '@omnitrain/parallel-ep',
  '@omnitrain/comm-gloo',
  '@omnitrain/kernels-cpu',
  '@omnitrain/kernels-cuda',
  '@omnitrain/modality-vision',
  '@omnitrain/modality-audio',
  '@omnitrain/train',
];

/** How {@link doctor} loads a package (tests pass a fake). */
export type DoctorImporter = (name: string) => Promise<Record<string, unknown>>;

const defaultImporter: DoctorImporter = (name) => import(name);

type Status = { available: boolean; message: string };

function isNotInstalled(e: unknown, name: string): boolean {
  const err = e as { code?: string; message?: string };
  return (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') && (err.message ?? '').includes(name);
}

async function versionOf(p: string, importer: DoctorImporter): Promise<string | null> {
  const require = createRequire(import.meta.url);
  try {
    return JSON.parse(readFileSync(require.resolve(`${p}/package.json`), 'utf8')).version ?? null;
  } catch {}
  try {
    let dir = require.resolve(p);
    for (let i = 0; i < 4; i++) {
      dir = dir.slice(0, dir.lastIndexOf('/'));
      if (existsSync(`${dir}/package.json`)) return JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')).version;
    }
  } catch {}
  try {
    return ((await importer(`${p}/package.json`)) as { default?: { version?: string } }).default?.version ?? null;
  } catch {
    return null;
  }
}

/** Call a package's status function (nativeStatus, glooStatus...), or say why it cannot be asked. */
async function backendStatus(pkg: string, fn: string, importer: DoctorImporter, notInstalled: string): Promise<Status> {
  let m: Record<string, unknown>;
  try {
    m = await importer(pkg);
  } catch (e) {
    if (isNotInstalled(e, pkg)) return { available: false, message: `${pkg} is not installed (${notInstalled})` };
    return { available: false, message: `${pkg} failed to load: ${(e as Error).message}` };
  }
  const f = m[fn];
  if (typeof f !== 'function') return { available: false, message: `${pkg} has no ${fn}() (too old?)` };
  try {
    const st = (f as () => Status)();
    return { available: !!st.available, message: String(st.message).replace(/^backend unavailable: /, '') };
  } catch (e) {
    return { available: false, message: (e as Error).message };
  }
}

/**
 * `omnitrain doctor`: what this machine and installation can run, as text lines: Node, every
 * omnitrain package installed (version) and the plugin it registers, each backend (native CPU
 * kernels, Gloo, CUDA) as available or unavailable with the reason, what the registry holds,
 * CPU features and GPUs.
 */
export async function doctor(opts: { importer?: DoctorImporter } = {}): Promise<string[]> {
  const importer = opts.importer ?? defaultImporter;
  const out: string[] = [];
  out.push(
    `node: ${process.version} (${process.platform} ${process.arch})${Number(process.versions.node.split('.')[0]) < 22 ? '  PROBLEM: omnitrain needs Node >= 22.12' : ''}`,
  );
  out.push(`core: ${CORE_VERSION}`);
  const r = defaultRegistry();
  out.push('plugins:');
  for (const p of PACKAGES) {
    const v = await versionOf(p, importer);
    if (v === null) continue;
    let note = '';
    if (p !== '@omnitrain/core') {
      try {
        const m = await importer(p);
        const plugin = m.plugin as Plugin | undefined;
        if (plugin) {
          if (!r.plugins().some((x) => x.name === plugin.name)) r.use(plugin);
          note = `plugin '${plugin.name}' ${plugin.version}, loaded`;
        } else note = 'no plugin object';
      } catch (e) {
        note = `FAILED to load: ${(e as Error).message}`;
      }
    }
    out.push(`  ${p.padEnd(28)} ${v.padEnd(8)} ${note}`.trimEnd());
  }
  const missing = PACKAGES.filter((p) => !out.some((l) => l.startsWith(`  ${p} `)));
  if (missing.length) out.push(`  (not installed: ${missing.join(', ')})`);
  out.push('backends:');
  const backends: [string, Status][] = [
    [
      'kernels-cpu native',
      await backendStatus('@omnitrain/kernels-cpu', 'nativeStatus', importer, 'core reference kernels are used'),
    ],
    [
      'gloo',
      await backendStatus('@omnitrain/comm-gloo', 'glooStatus', importer, 'install it to run several CPU processes'),
    ],
    [
      'cuda',
      await backendStatus(
        '@omnitrain/kernels-cuda',
        'cudaStatus',
        importer,
        'install it on a machine with an NVIDIA GPU to train on cuda devices',
      ),
    ],
  ];
  for (const [name, st] of backends) {
    out.push(`  ${name.padEnd(20)} ${st.available ? `available: ${st.message}` : `unavailable: ${st.message}`}`);
  }
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
