import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CaptureRecord } from './capture-record.js';
import { readCaptureRecord, removeCaptureRecord, writeCaptureRecord } from './capture-record.js';

const COPYING: CaptureRecord = {
  phase: 'copying',
  snapshotId: 'snap-1',
  storageLocation: 'file:///var/lib/violin/bundles',
  qemuPid: 4242,
  startedAt: '2026-11-25T04:00:00.000Z',
};
const HELD: CaptureRecord = {
  ...COPYING,
  phase: 'held',
  held: {
    stoppedAtMs: 1_790_000_000_000,
    completedAt: '2026-11-25T04:00:01.000Z',
    deadlineAt: '2026-11-25T04:00:11.000Z',
    deadlineMs: 10_000,
    result: {
      startedAt: '2026-11-25T04:00:00.000Z',
      completedAt: '2026-11-25T04:00:01.000Z',
      downtimeMs: 120,
      imageBytes: 4096,
      digest: 'sha256:00',
      image: 'vms/default/vm-a.img',
      paused: true,
    },
  },
};

describe('capture record', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'capture-record-'));
    path = join(dir, 'capture.json');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('reads back what was written, each phase replacing the last, and leaves no temp file', async () => {
    await writeCaptureRecord(path, COPYING);
    expect(await readCaptureRecord(path)).toEqual(COPYING);
    const ended: CaptureRecord = {
      ...HELD,
      phase: 'ended',
      end: { by: 'operator', resumedAt: '2026-11-25T04:00:02.000Z', downtimeMs: 1500 },
    };
    await writeCaptureRecord(path, ended);
    expect(await readCaptureRecord(path)).toEqual(ended);
    expect(await readdir(dir)).toEqual(['capture.json']);
  });

  it('is undefined when there is none; remove is idempotent and takes a cut-short temp file along', async () => {
    expect(await readCaptureRecord(path)).toBeUndefined();
    await writeFile(`${path}.tmp`, '{"phase":');
    await removeCaptureRecord(path);
    await removeCaptureRecord(path);
    expect(await readdir(dir)).toEqual([]);
  });

  it.each([
    ['{"phase":', /is not JSON/],
    ['[]', /phase undefined/],
    [JSON.stringify({ ...COPYING, phase: 'stopped' }), /phase "stopped"/],
    [JSON.stringify({ ...COPYING, qemuPid: '4242' }), /qemuPid is not an integer/],
    [JSON.stringify({ ...COPYING, phase: 'held' }), /phase held without a valid 'held'/],
    [JSON.stringify({ ...HELD, held: { ...HELD.held, deadlineAt: 'soon' } }), /without a valid 'held'/],
    [JSON.stringify({ ...HELD, held: { ...HELD.held, result: undefined } }), /without a valid 'held'/],
    [
      JSON.stringify({ ...HELD, held: { ...HELD.held, result: { ...HELD.held!.result, digest: 7 } } }),
      /without a valid 'held'/,
    ],
    [JSON.stringify({ ...HELD, phase: 'resuming' }), /phase resuming without who ended the pause/],
    [JSON.stringify({ ...HELD, phase: 'ended', end: { by: 'someone' } }), /without who ended the pause/],
  ])('refuses %s, naming the file and the problem', async (text, problem) => {
    await writeFile(path, text);
    const read = readCaptureRecord(path);
    await expect(read).rejects.toThrow(problem);
    await expect(read).rejects.toThrow(path);
  });
});
