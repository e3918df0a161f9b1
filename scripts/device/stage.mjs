// Stages .device/ (git-ignored) for a run on the lent GPU machine, whose host CPU has AVX-512: that machine has no
// Node and no node_modules, so everything the CPU check needs travels as plain files (name `.device` in `carry`):
//   .device/node.xz           this Node binary, xz-compressed
//   .device/libs.tar.xz       libopenblas.so.0 and its Fortran runtime (the addon links them; that image lacks them)
//   .device/pkg/node_modules/@omnitrain/{core,kernels-cpu}   package.json + dist (+ the built addon)
//   .device/pkg/tests.mjs     every packages/kernels-cpu/test file bundled with scripts/device/vitest-shim.mjs
//   .device/pkg/bench/cpu/    the CPU benches with their imports pointed at those packages
// Run after `pnpm --filter @omnitrain/core --filter @omnitrain/kernels-cpu run build`:
//   node scripts/device/stage.mjs      then scripts/device/cpu-check.sh runs there.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const dev = join(root, '.device');
const pkg = join(dev, 'pkg');
rmSync(pkg, { recursive: true, force: true });
mkdirSync(pkg, { recursive: true });

const addon = join(root, 'packages/kernels-cpu/native/build/Release/omnitrain_kernels_cpu.node');
for (const need of ['packages/core/dist/index.js', 'packages/kernels-cpu/dist/index.js', addon]) {
  if (!existsSync(resolve(root, need))) throw new Error(`stage: ${need} is missing; build core and kernels-cpu first`);
}

// 1. The two packages, as an installed copy would have them.
for (const name of ['core', 'kernels-cpu']) {
  const to = join(pkg, 'node_modules/@omnitrain', name);
  mkdirSync(to, { recursive: true });
  cpSync(join(root, 'packages', name, 'package.json'), join(to, 'package.json'));
  cpSync(join(root, 'packages', name, 'dist'), join(to, 'dist'), { recursive: true });
}
const addonTo = join(pkg, 'node_modules/@omnitrain/kernels-cpu/native/build/Release');
mkdirSync(addonTo, { recursive: true });
cpSync(addon, join(addonTo, 'omnitrain_kernels_cpu.node'));

// 2. The test files, bundled with the vitest stand-in.
const testDir = join(root, 'packages/kernels-cpu/test');
const testFiles = readdirSync(testDir).filter((f) => f.endsWith('.test.ts')).sort();
writeFileSync(
  join(here, 'test-files.generated.mjs'),
  `${testFiles.map((f) => `import '${join(testDir, f)}';`).join('\n')}\n`,
);
// rolldown is tsdown's dependency, not ours: pnpm does not link its bin at the root, so resolve it through tsdown.
const config = join(here, 'rolldown.config.mjs');
const fromTsdown = createRequire(createRequire(join(root, 'package.json')).resolve('tsdown/package.json'));
const rolldownPkg = fromTsdown.resolve('rolldown/package.json');
const rolldownBin = JSON.parse(readFileSync(rolldownPkg, 'utf8')).bin;
const binPath = join(dirname(rolldownPkg), typeof rolldownBin === 'string' ? rolldownBin : rolldownBin.rolldown);
execFileSync(process.execPath, [binPath, '-c', config], { cwd: root, stdio: 'inherit' });
rmSync(join(here, 'test-files.generated.mjs'));

// 3. The benches, importing the packages by name instead of by repository path.
const benchTo = join(pkg, 'bench/cpu');
mkdirSync(benchTo, { recursive: true });
const rewrite = (src) =>
  src
    .replaceAll('../../packages/core/dist/index.js', '@omnitrain/core')
    .replaceAll('../../packages/kernels-cpu/dist/index.js', '@omnitrain/kernels-cpu')
    .replaceAll('../../examples/char-transformer/model.ts', './model.ts');
for (const f of ['bench.ts', 'gemm.ts', 'train-step.ts', 'torch_bench.py']) {
  writeFileSync(join(benchTo, f), rewrite(readFileSync(join(root, 'bench/cpu', f), 'utf8')));
}
writeFileSync(join(benchTo, 'model.ts'), readFileSync(join(root, 'examples/char-transformer/model.ts'), 'utf8'));

// 4. Node and the shared libraries (compressed once; redone when the source is newer).
const fresh = (out, src) => existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs;
const nodeXz = join(dev, 'node.xz');
if (!fresh(nodeXz, process.execPath)) {
  execFileSync('sh', ['-c', `xz -T2 -c "${process.execPath}" > "${nodeXz}"`]);
}
const libs = ['libopenblas.so.0', 'libgfortran.so.5', 'libquadmath.so.0'];
const libTar = join(dev, 'libs.tar.xz');
if (!existsSync(libTar)) {
  execFileSync('sh', ['-c', `tar -chJf "${libTar}" -C /lib/x86_64-linux-gnu ${libs.join(' ')}`]);
}
const size = execFileSync('du', ['-sh', dev], { encoding: 'utf8' }).trim();
console.log(`[stage] ${testFiles.length} test files bundled; .device is ${size}`);
