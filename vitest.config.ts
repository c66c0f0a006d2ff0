import { defineConfig } from 'vitest/config';

// One run covers unit tests (next to the code), integration and end-to-end tests (test/).
// The global setup starts the real services (redis-server, prometheus) once per run.
export default defineConfig({
  test: {
    include: ['{agent,controller,common,proto}/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'dist/**'],
    globalSetup: ['test/harness/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One file at a time: several end-to-end tests hold timing bounds from the issues (a forced
    // rotation within 2 s, profiles ready within 2 s) that two heavy files side by side on a
    // 2-core machine can break. The whole run stays within a few minutes.
    fileParallelism: false,
    // The JSON report lets .ci/run print the plain 'N passed, N failed' line CI reads.
    reporters: ['default', ['json', { outputFile: 'test/.tmp/vitest-results.json' }]],
  },
});
