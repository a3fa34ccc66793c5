// bench/main.ts refuses what it does not understand before running anything.
import { describe, expect, it, vi } from 'vitest';

import { runBenchCli } from '../../../bench/cli.js';

describe('bench arguments', () => {
  it('refuses an unknown flag and an unknown figure with exit code 2, naming the known ones', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await runBenchCli(['--fast'])).toBe(2);
      expect(String(stderr.mock.calls.at(-1)?.[0])).toMatch(/unknown argument '--fast'/);
      expect(await runBenchCli(['--only', 'nope'])).toBe(2);
      expect(String(stderr.mock.calls.at(-1)?.[0])).toMatch(
        /unknown benchmark nope; known: epoch-advance, packet-in, vm-capture, skew, memory/,
      );
    } finally {
      stderr.mockRestore();
    }
  });
});
