import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { vswitchdControlSocket } from './datapath-purge.js';

describe('vswitchdControlSocket', () => {
  let runDir: string;
  beforeEach(async () => {
    runDir = await mkdtemp(join(tmpdir(), 'violin-ovs-run-'));
  });
  afterEach(() => rm(runDir, { recursive: true, force: true }));

  const make = (names: Record<string, string>) =>
    Promise.all(Object.entries(names).map(([name, text]) => writeFile(join(runDir, name), text)));

  it.each<[string, Record<string, string>, string]>([
    [
      "the stock name, from the pidfile's pid",
      { 'ovs-vswitchd.pid': '4242\n', 'ovs-vswitchd.4242.ctl': '', 'ovs-vswitchd.17.ctl': '' },
      'ovs-vswitchd.4242.ctl',
    ],
    [
      'a daemon started with --unixctl=ovs-vswitchd.ctl',
      { 'ovs-vswitchd.pid': '7\n', 'ovs-vswitchd.ctl': '' },
      'ovs-vswitchd.ctl',
    ],
  ])('finds %s', async (_case, files, expected) => {
    await make(files);
    expect(await vswitchdControlSocket(runDir)).toBe(join(runDir, expected));
  });

  it('says what it looked for when ovs-vswitchd is not there (a stale pidfile)', async () => {
    await make({ 'ovs-vswitchd.pid': '99\n', 'db.sock': '' });
    await expect(vswitchdControlSocket(runDir)).rejects.toThrow(
      /no ovs-vswitchd control socket in .* \(looked for ovs-vswitchd\.99\.ctl, ovs-vswitchd\.ctl\): is ovs-vswitchd running on this node\?/,
    );
  });

  it('names a run directory it cannot read', async () => {
    await expect(vswitchdControlSocket(join(runDir, 'absent'))).rejects.toThrow(
      /cannot read Open vSwitch's run directory .*absent: .*ENOENT/,
    );
  });
});
