// Compiles the native addon with node-gyp against local Node headers (never downloads them).
// On failure the TypeScript build still proceeds: the reason is written to native/build/unavailable.txt,
// which the plugin reports as "backend unavailable: <why>".
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, 'native', 'build');
const reasonFile = join(buildDir, 'unavailable.txt');
const require = createRequire(import.meta.url);

function fail(why) {
  mkdirSync(buildDir, { recursive: true });
  rmSync(join(buildDir, 'Release', 'omnitrain_kernels_cpu.node'), { force: true }); // never load a stale addon
  writeFileSync(reasonFile, `${why.trim()}\n`);
  console.warn(`[kernels-cpu] native addon not built: ${why.trim().split('\n').slice(-5).join('\n')}`);
  process.exit(0);
}

rmSync(reasonFile, { force: true });
if (process.env.OMNITRAIN_SKIP_NATIVE === '1') fail('OMNITRAIN_SKIP_NATIVE=1 was set at build time');
if (process.platform !== 'linux' || process.arch !== 'x64') fail(`unsupported platform ${process.platform}-${process.arch}`);
const nodeRoot = dirname(dirname(process.execPath));
const nodedir =
  process.env.npm_config_nodedir ||
  (existsSync(join(nodeRoot, 'include', 'node', 'node_api.h')) ? nodeRoot : undefined);
if (!nodedir) fail(`no Node headers next to ${process.execPath} and npm_config_nodedir is unset`);
if (!existsSync('/usr/include/x86_64-linux-gnu/cblas.h') && !existsSync('/usr/include/cblas.h'))
  fail('OpenBLAS headers not found (install libopenblas-dev)');
const cxx = process.env.CXX || 'g++';
if (spawnSync(cxx, ['--version'], { encoding: 'utf8' }).status !== 0) fail(`no C++ compiler: '${cxx} --version' failed`);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  fail('node-gyp is not installed');
}
const jobs = String(Math.max(1, (await import('node:os')).availableParallelism()));
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '-j', jobs], {
  cwd: join(root, 'native'),
  encoding: 'utf8',
  env: { ...process.env, npm_config_nodedir: nodedir },
});
if (r.status !== 0) {
  const log = `${r.stderr || ''}\n${r.stdout || ''}`.split('\n');
  const errors = log.filter((l) => /error|not found|no such file|cannot|fatal/i.test(l) && !/^gyp info/.test(l));
  fail(`node-gyp rebuild failed (exit ${r.status}): ${errors.slice(0, 12).join('\n') || log.slice(-12).join('\n')}`);
}
console.log('[kernels-cpu] native addon built: native/build/Release/omnitrain_kernels_cpu.node');
