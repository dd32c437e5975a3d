import { defineConfig } from 'vitest/config';

/**
 * `npm run test:ha`: the failover tests of issue 14 §2 against the HA stack (`stack:up -- --ha`:
 * Patroni, HAProxy, Sentinels), which this run brings up. Kept out of `npm test` (see
 * docs/operations.md "Highly available engines").
 */
export default defineConfig({
  test: {
    globalSetup: ['test/support/ha-setup.ts'],
    include: ['test/ha/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    maxWorkers: 1,
    reporters: ['default'],
  },
});
