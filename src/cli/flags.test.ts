import { afterEach, describe, expect, it, vi } from 'vitest';

import { parseCommandFlags } from './flags.js';

const USAGE = 'usage: violin thing [--name N] [--on]\n';
const OPTIONS = { name: { type: 'string' }, on: { type: 'boolean' } } as const;

describe('parseCommandFlags', () => {
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  afterEach(() => {
    out.mockClear();
    err.mockClear();
  });

  it('returns the values of the flags given', () => {
    expect(parseCommandFlags('violin thing', USAGE, ['--name', 'x', '--on'], OPTIONS)).toEqual({
      values: { name: 'x', on: true },
    });
    expect(out).not.toHaveBeenCalled();
    expect(err).not.toHaveBeenCalled();
  });

  it('prints the usage on stdout and ends with 0 for --help and -h', () => {
    for (const flag of ['--help', '-h']) {
      expect(parseCommandFlags('violin thing', USAGE, [flag], OPTIONS)).toBe(0);
      expect(out).toHaveBeenLastCalledWith(USAGE);
    }
  });

  it('names the bad flag and the command on stderr, with the usage, and ends with 2', () => {
    expect(parseCommandFlags('violin thing', USAGE, ['--nmae', 'x'], OPTIONS)).toBe(2);
    expect(err).toHaveBeenCalledWith(`violin thing: Unknown option '--nmae'\n${USAGE}`);
    expect(parseCommandFlags('violin thing', USAGE, ['stray'], OPTIONS)).toBe(2);
    expect(String(err.mock.lastCall?.[0])).toMatch(/^violin thing: .*stray/);
  });
});
