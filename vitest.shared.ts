import { fileURLToPath } from 'node:url';

const packages = fileURLToPath(new URL('./packages/', import.meta.url));

/**
 * Tests run against every package's sources, not its (possibly stale) build:
 * `@omnitrain/x` -> packages/x/src/index.ts, `@omnitrain/x/sub` -> packages/x/src/sub.ts.
 */
export const sourceAliases = [
  { find: /^@omnitrain\/([a-z0-9-]+)$/, replacement: `${packages}$1/src/index.ts` },
  { find: /^@omnitrain\/([a-z0-9-]+)\/(.+)$/, replacement: `${packages}$1/src/$2.ts` },
];
