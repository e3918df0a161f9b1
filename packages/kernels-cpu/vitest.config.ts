import { fileURLToPath } from 'node:url';
import { defineProject } from 'vitest/config';
import { sourceAliases } from '../../vitest.shared.js';

export default defineProject({
  resolve: {
    alias: [
      { find: /^@omnitrain\/core\/testing$/, replacement: fileURLToPath(new URL('../core/src/testing/index.ts', import.meta.url)) },
      ...sourceAliases,
    ],
  },
  test: {
    name: 'kernels-cpu',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
  },
});
