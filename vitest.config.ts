import { defineConfig } from 'vitest/config';

// Four tiers, one config: `vitest run --project unit|int|e2e|browser` (see DESIGN.md "Tests").
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          exclude: ['src/**/*.int.test.ts', 'node_modules/**', 'dist/**'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'int',
          include: ['src/**/*.int.test.ts', 'test/int/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Real engines are shared: one file at a time keeps tests from racing on the same server.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          // The dashboard in Debian's headless Chromium (playwright-core); needs `npm run build`.
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 90_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
