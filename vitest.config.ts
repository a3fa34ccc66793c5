import { defineConfig } from 'vitest/config';

// Three projects: unit tests run anywhere; integration and e2e tests run against
// real parts (kube-apiserver + etcd, ovsdb-server + ovs-vswitchd, QEMU) that
// `make test` installs. A missing part fails the test with a message naming it
// (test/support/require-tool.ts); nothing is skipped silently.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          // Unit tests first, then integration, then e2e: a broken codec fails in seconds, not after the lab.
          sequence: { groupOrder: 0 },
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          sequence: { groupOrder: 1 },
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Real processes (API server, OVS, QEMU) on a 2-core machine: keep the
          // number of files running at once small so timings stay sane.
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          sequence: { groupOrder: 2 },
          testTimeout: 900_000,
          hookTimeout: 600_000,
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
    ],
  },
});
