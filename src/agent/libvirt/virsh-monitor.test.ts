import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseEventLine, VirshMonitor } from './virsh-monitor.js';

describe('parseEventLine (virsh qemu-monitor-event --timestamp)', () => {
  it("reads the event, its data and QEMU's timestamp", () => {
    expect(
      parseEventLine(
        `2026-12-06 23:11:37.680+0000: event MIGRATION for domain 'default_vm-a': {"status":"active"}`,
      ),
    ).toEqual({
      event: 'MIGRATION',
      data: { status: 'active' },
      timestampMs: Date.parse('2026-12-06T23:11:37.680Z'),
    });
  });

  it('reads an event without data and a timestamp with an offset', () => {
    expect(parseEventLine(`2026-12-06 23:11:37.701+0100: event STOP for domain 'ns_vm': <null>`)).toEqual({
      event: 'STOP',
      data: {},
      timestampMs: Date.parse('2026-12-06T22:11:37.701Z'),
    });
  });

  it.each([
    'event loop',
    '',
    `2026-12-06 23:11:37.680+0000: event MIGRATION for domain 'x': {"status":`,
    `garbage: event STOP for domain 'x': <null>`,
  ])('ignores a line that is no event: %j', (line) => {
    expect(parseEventLine(line)).toBeUndefined();
  });
});

describe('VirshMonitor: a monitor command that gets no answer', () => {
  let dir: string;
  const saved = process.env.VIOLIN_VIRSH;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fake-virsh-'));
    // A virsh that never answers, as over a QEMU whose big lock is held: it records its PID and waits.
    const fake = join(dir, 'virsh');
    await writeFile(fake, `#!/bin/sh\necho $$ > ${join(dir, 'pid')}\nexec sleep 300\n`);
    await chmod(fake, 0o755);
    process.env.VIOLIN_VIRSH = fake;
  });

  afterEach(async () => {
    if (saved === undefined) delete process.env.VIOLIN_VIRSH;
    else process.env.VIOLIN_VIRSH = saved;
    await rm(dir, { recursive: true, force: true });
  });

  const monitor = () =>
    new VirshMonitor(
      { vm: { namespace: 'default', name: 'vm-a' }, podUid: 'p', uri: 'qemu:///x', domain: 'default_vm-a' },
      300,
    );

  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it.each([
    ['execute', (m: VirshMonitor) => m.execute('query-migrate'), 'query-migrate'],
    ['runState', (m: VirshMonitor) => m.runState(), 'query-status'],
    ['executeWithFd', (m: VirshMonitor) => m.executeWithFd('getfd', { fdname: 'x' }, 0), 'getfd'],
  ])('%s fails after its bound, naming the VM and the command, and kills virsh', async (_, call, command) => {
    const m = monitor();
    const started = Date.now();
    await expect(call(m)).rejects.toThrow(
      new RegExp(`default_vm-a: ${command} got no answer within 300 ms.*virsh \\(pid \\d+\\) killed`),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    const pid = Number((await readFile(join(dir, 'pid'), 'utf8')).trim());
    const deadline = Date.now() + 5_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(alive(pid)).toBe(false);
    m.close();
  });
});
