// The rows' next state, for every step of one VM and of the commit, and
// every way a migration to a snapshot host ends.
import { describe, expect, it } from 'vitest';

import type { DistributedSnapshotStatusVm as Row } from '../../api/index.js';
import type { VirtualMachineInstance, VirtualMachineInstanceMigration } from '../../kubevirt/types.js';
import {
  advancedRow,
  capturedRow,
  capturingRow,
  committedStatus,
  holdLostFailure,
  isBundleWritten,
  isReturnUnderWay,
  landedOn,
  launcherForCapture,
  mayBeHeld,
  migratingRow,
  pausedRow,
  resumedRow,
  returnedRow,
  returningRow,
  unpausableVmis,
  unpausedRow,
  waitingRow,
} from './next-status.js';

const at = (ms: number): Date => new Date(Date.UTC(2026, 0, 1) + ms);

/** The VMI `a` on `nodeName`, with KubeVirt's migrationState. */
function vmiOn(nodeName: string, migrationState?: object): VirtualMachineInstance {
  return {
    metadata: { name: 'a', namespace: 'ns' },
    spec: {},
    status: { phase: 'Running', nodeName, ...(migrationState ? { migrationState } : {}) },
  } as VirtualMachineInstance;
}

describe('one VM', () => {
  const row: Row = { name: 'a', node: 'worker-1', phase: 'Pending', epoch: 'Pre' };

  it('waits for its start, then migrates (S_i)', () => {
    expect(waitingRow(row, 1500)).toEqual({ ...row, message: 'starts in 1.5s (skew alignment)' });
    expect(migratingRow(row, 's-a', at(7))).toEqual({
      ...row,
      phase: 'Migrating',
      epoch: 'Snapshot',
      migration: 's-a',
      snapshotStart: at(7).toISOString(),
      message: 'migrating to a snapshot host',
    });
  });

  const migrating: Row = { ...row, phase: 'Migrating', epoch: 'Snapshot', migration: 's-a' };
  const migration = (phase?: string, conditions?: { message?: string }[]): VirtualMachineInstanceMigration =>
    ({
      metadata: { name: 's-a', uid: 'm1' },
      spec: { vmiName: 'a' },
      status: { phase, conditions },
    }) as VirtualMachineInstanceMigration;
  const moved = (state: object, nodeName = 'snap-1'): VirtualMachineInstance => vmiOn(nodeName, state);
  it.each([
    {
      name: 'the VMI is gone',
      m: migration('Running'),
      v: undefined,
      want: { reason: 'VMGone', message: 'a was deleted during the snapshot' },
    },
    {
      name: 'the migration is gone',
      m: undefined,
      v: vmiOn('worker-1'),
      want: { reason: 'MigrationGone', message: 'migration s-a of a was deleted by someone else' },
    },
    {
      name: 'KubeVirt failed the migration, with the VMI saying why',
      m: migration('Failed'),
      v: moved({ migrationUid: 'm1', failed: true, failureReason: ' target pod unschedulable ' }),
      want: {
        reason: 'MigrationFailed',
        message: 'migration s-a of a to a snapshot host failed: target pod unschedulable',
      },
    },
    {
      name: 'the migration Failed, its condition saying why',
      m: migration('Failed', [{}, { message: 'no node matched' }]),
      v: vmiOn('worker-1'),
      want: {
        reason: 'MigrationFailed',
        message: 'migration s-a of a to a snapshot host failed: no node matched',
      },
    },
    {
      name: 'the migration Failed, nobody saying why',
      m: migration('Failed'),
      v: vmiOn('worker-1'),
      want: {
        reason: 'MigrationFailed',
        message: 'migration s-a of a to a snapshot host failed: KubeVirt reports the migration Failed',
      },
    },
    {
      name: 'on its way',
      m: migration('Running'),
      v: moved({ migrationUid: 'm1' }, 'worker-1'),
      want: undefined,
    },
    {
      name: 'Succeeded, but the VMI reports another migration',
      m: migration('Succeeded'),
      v: moved({ migrationUid: 'm0', completed: true, targetNode: 'snap-1' }),
      want: undefined,
    },
    {
      name: 'Succeeded, the VMI not handed over yet',
      m: migration('Succeeded'),
      v: moved({ migrationUid: 'm1', completed: true, targetNode: 'snap-1' }, 'worker-1'),
      want: undefined,
    },
    {
      name: 'landed',
      m: migration('Succeeded'),
      v: moved({ migrationUid: 'm1', completed: true, targetNode: 'snap-1' }),
      want: 'snap-1',
    },
  ] as {
    name: string;
    m?: VirtualMachineInstanceMigration;
    v?: VirtualMachineInstance;
    want?: string | object;
  }[])('migration: $name', ({ m, v, want }) => {
    if (typeof want === 'object') {
      expect(() => landedOn(migrating, m, v)).toThrow(expect.objectContaining(want));
    } else {
      expect(landedOn(migrating, m, v)).toBe(want);
    }
  });

  it('captures on its snapshot host, records T_i, advances, resumes', () => {
    const capturing = capturingRow(migrating, 'snap-1');
    expect(capturing).toEqual({
      ...migrating,
      phase: 'Capturing',
      snapshotHost: 'snap-1',
      message: 'capturing memory and device state',
    });
    const captured = capturedRow(capturing, {
      startedAt: at(10).toISOString(),
      completedAt: at(900).toISOString(),
      downtimeMs: 12.6,
      imageBytes: 1024,
      digest: 'sha256:ab',
      image: 'images/ns/a.img',
    });
    expect(captured).toEqual({
      ...capturing,
      phase: 'Captured',
      capturedAt: at(900).toISOString(),
      downtimeMs: 13,
      imageBytes: 1024,
      digest: 'sha256:ab',
      message: 'captured; advancing its epoch',
    });
    expect(advancedRow(captured, 3)).toEqual({
      ...captured,
      epoch: 'Post',
      message: 'captured; 3 held packet(s) re-injected',
    });
    expect(advancedRow(captured)).toEqual({ ...captured, epoch: 'Post', message: 'captured; post-snapshot' });
    expect(resumedRow(captured, { resumedAt: at(950).toISOString(), downtimeMs: 61.4 })).toEqual({
      ...captured,
      resumedAt: at(950).toISOString(),
      downtimeMs: 61,
    });
  });
});

describe('Committing', () => {
  const counters = {
    type1: 1,
    type2Recorded: 2,
    type3Buffered: 3,
    type3Reinjected: 3,
    bufferedBytes: 9,
    peakBufferBytes: 100,
    dropped: 0,
  };

  it('records the bundle and the counters (without the bytes held now)', () => {
    const status = committedStatus({ phase: 'Committing' }, counters, {
      storageLocation: 'file:///b',
      path: 'p',
      manifestDigest: 'sha256:m',
    });
    expect(status).toEqual({
      phase: 'Committing',
      network: {
        type1: 1,
        type2Recorded: 2,
        type3Buffered: 3,
        type3Reinjected: 3,
        peakBufferBytes: 100,
        dropped: 0,
      },
      bundle: { storageLocation: 'file:///b', path: 'p', manifestDigest: 'sha256:m' },
    });
    expect(isBundleWritten(status)).toBe(true);
    expect(isBundleWritten({ phase: 'Committing', bundle: { path: 'p' } })).toBe(false);
  });

  const row: Row = { name: 'a', node: 'worker-1', snapshotHost: 'snap-1', phase: 'Captured' };
  it('returns VMs to their source node', () => {
    expect(returningRow(row, 's-a-return')).toEqual({
      ...row,
      phase: 'Returning',
      migration: 's-a-return',
      message: 'returning to worker-1',
    });
    expect(returnedRow(row, true)).toEqual({ ...row, phase: 'Returned', message: 'back on worker-1' });
    expect(returnedRow(row, false)).toEqual({
      ...row,
      message: 'could not migrate back to worker-1; still on snap-1',
    });
  });

  it.each([
    { phase: undefined, exists: false, want: false },
    { phase: 'Running', exists: true, want: true },
    { phase: undefined, exists: true, want: true },
    { phase: 'Succeeded', exists: true, want: false },
    { phase: 'Failed', exists: true, want: false },
  ])('a return migration $phase (exists: $exists) is under way: $want', ({ phase, exists, want }) => {
    const migration = exists
      ? ({ metadata: {}, spec: { vmiName: 'a' }, status: { phase } } as VirtualMachineInstanceMigration)
      : undefined;
    expect(isReturnUnderWay(migration)).toBe(want);
  });
});

describe('one VM held through KubeVirt (libvirt backend)', () => {
  const capturing: Row = {
    name: 'a',
    node: 'worker-1',
    snapshotHost: 'snap-1',
    phase: 'Capturing',
    epoch: 'Snapshot',
  };
  const vmi = (status: VirtualMachineInstance['status'], spec: object = {}): VirtualMachineInstance =>
    ({ metadata: { name: 'a' }, spec, status }) as VirtualMachineInstance;
  const paused = [{ type: 'Paused', status: 'True' as const }];

  it('pauses at T_i, then its downtime runs from that pause to the unpause', () => {
    const held = pausedRow(capturing, at(100));
    expect(held).toMatchObject({ pausedAt: at(100).toISOString(), phase: 'Capturing' });
    expect(unpausedRow({ ...held, epoch: 'Post' }, at(350))).toMatchObject({
      resumedAt: at(350).toISOString(),
      downtimeMs: 250,
    });
  });

  it.each([
    {
      name: 'its pod on the snapshot host',
      vmi: vmi({ activePods: { p1: 'worker-1', p2: 'snap-1' } }),
      want: 'p2',
    },
    { name: 'no pod there yet: waits', vmi: vmi({ activePods: { p1: 'worker-1' } }), want: undefined },
    { name: 'the VMI gone', vmi: undefined, want: 'VMGone' },
  ])('reaches the launcher: $name', ({ vmi, want }) => {
    if (want !== 'VMGone') expect(launcherForCapture(capturing, vmi)).toBe(want);
    else expect(() => launcherForCapture(capturing, vmi)).toThrow(expect.objectContaining({ reason: want }));
  });

  it.each([
    { name: 'still paused', vmi: vmi({ conditions: paused }), want: undefined },
    { name: 'unpaused behind its back', vmi: vmi({ conditions: [] }), want: 'CaptureExpired' },
    { name: 'deleted', vmi: undefined, want: 'CaptureExpired' },
  ])('keeps the hold until the epoch advances: $name', ({ vmi, want }) => {
    expect(holdLostFailure(capturing, vmi)?.reason).toBe(want);
  });

  it.each([
    { row: capturing, held: true },
    { row: { ...capturing, phase: 'Captured' as const }, held: true },
    { row: { ...capturing, phase: 'Captured' as const, resumedAt: 'x' }, held: false },
    { row: { ...capturing, phase: 'Migrating' as const }, held: false },
    { row: { ...capturing, phase: 'Failed' as const, pausedAt: 'x' }, held: true },
  ])('an abort unpauses $row.phase (resumed: $row.resumedAt) if paused: $held', ({ row, held }) => {
    expect(mayBeHeld(row)).toBe(held);
  });

  it.each([
    { name: 'no probe', spec: {}, want: undefined },
    { name: 'a guest-agent ping', spec: { livenessProbe: { guestAgentPing: {} } }, want: undefined },
    { name: 'an HTTP probe', spec: { livenessProbe: { httpGet: { port: 80 } } }, want: 'VMNotPausable' },
  ])('planning refuses a VMI KubeVirt will not pause: $name', ({ spec, want }) => {
    const refused = unpausableVmis([vmi({}, spec)]);
    expect(refused?.reason).toBe(want);
    if (want) expect(refused?.message).toContain('a has a livenessProbe KubeVirt will not pause it with');
  });
});
