// Module hooks for child processes spawned by tests (shared by every package's test helpers): `@omnitrain/<pkg>` resolves to the package's
// TypeScript sources (as vitest does) and `./x.js` imports between .ts files resolve to `./x.ts`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const packages = new URL('../../packages/', import.meta.url);

export async function resolve(specifier, context, next) {
  const m = /^@omnitrain\/([a-z0-9-]+)(?:\/(.+))?$/.exec(specifier);
  if (m) {
    const file = new URL(`${m[1]}/src/${m[2] ?? 'index'}.ts`, packages);
    return { url: file.href, shortCircuit: true };
  }
  if (
    (specifier.startsWith('./') || specifier.startsWith('../')) &&
    specifier.endsWith('.js') &&
    context.parentURL?.endsWith('.ts')
  ) {
    const ts = new URL(specifier.replace(/\.js$/, '.ts'), context.parentURL);
    if (existsSync(fileURLToPath(ts))) return { url: ts.href, shortCircuit: true };
  }
  return next(specifier, context);
}
