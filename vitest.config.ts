import { defineConfig } from 'vitest/config';

// One project per package; each package's vitest.config.ts names its own tests.
export default defineConfig({
  test: {
    projects: ['packages/*'],
  },
});
