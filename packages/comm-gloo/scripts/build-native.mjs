// Builds the Gloo addon (native/binding.gyp -> native/build/Release) with node-gyp against the
// headers of the running Node: never downloads headers. binding.gyp lives in native/ so that
// `pnpm install` does not run node-gyp on its own. A failed build is not fatal: the reason goes to
// native/build/native-status.json and the backend reports "backend unavailable: <why>" on first use.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');
const status = join(native, 'build', 'native-status.json');
const fromExec = dirname(dirname(process.execPath));
const nodedir =
  process.env.npm_config_nodedir || (existsSync(join(fromExec, 'include', 'node', 'node_api.h')) ? fromExec : '');

function record(ok, reason) {
  mkdirSync(join(native, 'build'), { recursive: true });
  writeFileSync(status, `${JSON.stringify({ ok, reason }, null, 2)}\n`);
  console.log(ok ? '[comm-gloo] native addon built' : `[comm-gloo] native addon NOT built: ${reason}`);
}

if (!existsSync('/usr/include/gloo/rendezvous/context.h')) {
  record(false, 'Gloo headers not found (/usr/include/gloo): install the Debian package libgloo-dev');
} else if (!nodedir) {
  record(false, 'no Node headers: set npm_config_nodedir to a Node install that has include/node');
} else {
  let gyp;
  try {
    gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    gyp = '';
  }
  if (!gyp) {
    record(false, 'node-gyp is not installed');
  } else {
    const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs=max'], {
      cwd: native,
      encoding: 'utf8',
      env: { ...process.env, npm_config_nodedir: nodedir },
    });
    if (r.status === 0) record(true, '');
    else {
      const noise = /^gyp (info|ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok))/;
      const lines = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').filter((l) => l.trim() && !noise.test(l));
      const tail = lines.slice(-8).join('\n');
      record(false, `node-gyp rebuild failed (exit ${r.status}): ${tail}`);
    }
  }
}
