// Bundles the kernels-cpu test files for the device (see stage.mjs): 'vitest' becomes the shim, @omnitrain/* stay
// imports (resolved from .device/pkg/node_modules there), TypeScript's `.js` specifiers find the `.ts` files.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export default {
  input: join(here, 'tests-entry.mjs'),
  platform: 'node',
  external: [/^@omnitrain\//, /^node:/],
  resolve: {
    alias: { vitest: join(here, 'vitest-shim.mjs') },
    extensionAlias: { '.js': ['.ts', '.js'] },
  },
  treeshake: false,
  output: { file: resolve(here, '../../.device/pkg/tests.mjs'), format: 'esm' },
};
