// The snapshot's next status for every phase and every failure the pure
// functions decide, one table each.
import { describe, expect, it } from 'vitest';

import type {
  DistributedSnapshotStatus as Status,
  DistributedSnapshotStatusVm as Row,
} from '../../api/index.js';
import type { VirtualMachineInstance } from '../../kubevirt/types.js';
import type { SnapshotNetworkStatus } from '../../ofc/control/types.js';
import { FAILURE_CLASSES } from '../shared/failure-classes.js';
import type { SnapshotFailure } from './failure.js';
import {
  acceptedStatus,
  blockingSnapshot,
  endsWith,
  failedStatus,
  failingStatus,
  firstSnapshotStart,
  hasStartedWork,
  isAborting,
  isFinal,
  msUntilStart,
  networkAbortFailure,
  plannedStatus,
  planningStatus,
  snapshottingStep,
  startOrder,
  succeededStatus,
  timeoutFailure,
  unreadyVmis,
  withConditions,
} from './next-status.js';
import type { DistributedSnapshot } from './resource.js';

const T0 = '2026-01-01T00:00:00.000Z';
const at = (ms: number): Date => new Date(Date.parse(T0) + ms);
const PHASES: Status['phase'][] = [
  undefined,
  'Pending',
  'Planning',
  'Snapshotting',
  'Committing',
  'Succeeded',
  'Failed',
];

function vmi(
  name: string,
  overrides: Partial<NonNullable<VirtualMachineInstance['status']>> = {},
): VirtualMachineInstance {
  return {
    metadata: { name, namespace: 'ns', uid: `uid-${name}` },
    spec: {},
    status: {
      phase: 'Running',
      nodeName: 'worker-1',
      conditions: [{ type: 'LiveMigratable', status: 'True' }],
      ...overrides,
    },
  } as VirtualMachineInstance;
}

function snapshot(name: string, created: string, status?: Status): DistributedSnapshot {
  return {
    metadata: { name, namespace: 'ns', uid: `uid-${name}`, creationTimestamp: created as unknown as Date },
    spec: { selector: { matchLabels: { app: 'bank' } }, storageLocation: 'file:///b' },
    ...(status ? { status } : {}),
  } as unknown as DistributedSnapshot;
}

function failure(f: SnapshotFailure | undefined): { reason: string; message: string } | undefined {
  return f && { reason: f.reason, message: f.message };
}

describe('phase predicates', () => {
  it.each(PHASES)('phase %s', (phase) => {
    const final = phase === 'Succeeded' || phase === 'Failed';
    expect(isFinal(phase)).toBe(final);
    expect(hasStartedWork(phase)).toBe(phase !== undefined && phase !== 'Pending');
    expect(isAborting({ phase, failureReason: 'X' })).toBe(!final);
    expect(isAborting({ phase })).toBe(false);
    expect(endsWith({ phase: 'Committing' }, { phase })).toBe(final);
    expect(endsWith({ phase }, { phase })).toBe(false);
  });
});

describe('status around every step', () => {
  it.each([
    { name: 'no start time yet', status: {}, now: 11 * 60_000, timeout: undefined, want: undefined },
    {
      name: 'within the default 10m',
      status: { phase: 'Planning', startTime: T0 },
      now: 10 * 60_000,
      timeout: undefined,
      want: undefined,
    },
    {
      name: 'past the default, naming who is not post-snapshot',
      status: {
        phase: 'Snapshotting',
        startTime: T0,
        vms: [
          { name: 'a', phase: 'Captured', epoch: 'Post' },
          { name: 'b', phase: 'Migrating', epoch: 'Snapshot' },
        ],
      },
      now: 10 * 60_000 + 1,
      timeout: undefined,
      want: {
        reason: 'Timeout',
        message:
          'snapshot did not complete within spec.timeout 10m (phase Snapshotting; still waiting for b (Migrating))',
      },
    },
    {
      name: 'past spec.timeout with no rows',
      status: { phase: 'Planning', startTime: T0 },
      now: 31_000,
      timeout: '30s',
      want: {
        reason: 'Timeout',
        message: 'snapshot did not complete within spec.timeout 30s (phase Planning)',
      },
    },
  ] as { name: string; status: Status; now: number; timeout?: string; want?: object }[])(
    'timeout: $name',
    ({ status, now, timeout, want }) => {
      expect(failure(timeoutFailure(timeout, status, at(now)))).toEqual(want);
    },
  );

  it('accepts, then plans', () => {
    expect(acceptedStatus({}, at(5), 'qemu')).toEqual({
      phase: 'Pending',
      startTime: at(5).toISOString(),
      backend: 'qemu',
    });
    expect(planningStatus({ phase: 'Pending', startTime: T0 })).toEqual({ phase: 'Planning', startTime: T0 });
  });

  it('records a failure without changing the phase', () => {
    const failing = failingStatus({ phase: 'Snapshotting' }, {
      reason: 'R',
      message: 'm',
    } as SnapshotFailure);
    expect(failing).toEqual({ phase: 'Snapshotting', failureReason: 'R', failureMessage: 'm' });
  });

  it('ends Failed: rows not post-snapshot fail, with the duration', () => {
    const status: Status = {
      phase: 'Snapshotting',
      startTime: T0,
      vms: [
        { name: 'a', phase: 'Captured', epoch: 'Post' },
        { name: 'b', phase: 'Capturing', epoch: 'Snapshot' },
      ],
    };
    expect(failedStatus(status, at(1500))).toEqual({
      ...status,
      phase: 'Failed',
      vms: [
        { name: 'a', phase: 'Captured', epoch: 'Post' },
        { name: 'b', phase: 'Failed', epoch: 'Snapshot' },
      ],
      completionTime: at(1500).toISOString(),
      durationMs: 1500,
      duration: '1.5s',
    });
  });

  it('ends Succeeded with the duration', () => {
    expect(succeededStatus({ phase: 'Committing', startTime: T0 }, at(250))).toEqual({
      phase: 'Succeeded',
      startTime: T0,
      completionTime: at(250).toISOString(),
      durationMs: 250,
      duration: '250ms',
    });
  });

  it.each([
    { status: { phase: 'Snapshotting' }, ready: 'False', progressing: 'Snapshotting', degraded: 'False' },
    {
      status: { phase: 'Snapshotting', failureReason: 'Timeout', failureMessage: 'm' },
      ready: 'False',
      progressing: 'Aborting',
      degraded: 'True',
    },
    {
      status: { phase: 'Succeeded', bundle: { path: 'p' } },
      ready: 'True',
      progressing: 'Succeeded',
      degraded: 'False',
    },
    {
      status: { phase: 'Failed', failureReason: 'Timeout', failureMessage: 'm' },
      ready: 'False',
      progressing: 'Failed',
      degraded: 'True',
    },
  ] as { status: Status; ready: string; progressing: string; degraded: string }[])(
    'conditions for $status.phase ($progressing)',
    ({ status, ready, progressing, degraded }) => {
      const written = withConditions(status, 3, at(0));
      expect(written.observedGeneration).toBe(3);
      const byType = new Map(written.conditions?.map((c) => [c.type, c]));
      expect(byType.get('Ready')?.status).toBe(ready);
      expect(byType.get('Progressing')?.reason).toBe(progressing);
      expect(byType.get('Degraded')?.status).toBe(degraded);
      if (status.phase === 'Succeeded') expect(byType.get('Ready')?.message).toBe('bundle p committed');
    },
  );
});

describe('waiting conditions', () => {
  it('an outage shows what is awaited on Ready and Progressing, and the next pass without it clears it', () => {
    const waiting = { reason: 'WaitingForOFC', message: 'connect ECONNREFUSED; retrying' };
    const planning: Status = { phase: 'Planning', startTime: at(0).toISOString() };
    const shown = withConditions(planning, 1, at(1), waiting);
    const byType = new Map(shown.conditions?.map((c) => [c.type, c]));
    expect(byType.get('Ready')).toMatchObject({ status: 'False', reason: 'WaitingForOFC' });
    expect(byType.get('Progressing')).toMatchObject({
      status: 'True',
      reason: 'WaitingForOFC',
      message: 'Planning: connect ECONNREFUSED; retrying',
    });
    expect(byType.get('Degraded')).toMatchObject({ status: 'False' });
    const cleared = withConditions(shown, 1, at(2));
    expect(cleared.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('Planning');
  });

  it('a recorded failure wins over a wait: the object is aborting, not waiting', () => {
    const aborting: Status = { phase: 'Planning', failureReason: 'NoSnapshotHosts', failureMessage: 'm' };
    const shown = withConditions(aborting, 1, at(1), { reason: 'WaitingForOFC', message: 'x' });
    expect(shown.conditions?.find((c) => c.type === 'Progressing')?.reason).toBe('Aborting');
  });
});

describe('Planning', () => {
  it.each([
    { name: 'every VM Running and live-migratable', vmis: [vmi('a'), vmi('b')], want: undefined },
    {
      name: 'a VM not Running, one not started',
      vmis: [vmi('a', { phase: 'Scheduling' }), vmi('b', { phase: undefined })],
      want: {
        reason: 'VMNotMigratable',
        message: `a is Scheduling, not Running; b is not started, not Running; spec.selector: ${FAILURE_CLASSES.vmNotMigratable.remedy}`,
      },
    },
    {
      name: 'a VM not live-migratable, with and without the condition',
      vmis: [
        vmi('a', { conditions: [{ type: 'LiveMigratable', status: 'False', message: 'disk is RWO' }] }),
        vmi('b', { conditions: [] }),
      ],
      want: {
        reason: 'VMNotMigratable',
        message: `a is not live-migratable (disk is RWO); b is not live-migratable (no LiveMigratable condition); spec.selector: ${FAILURE_CLASSES.vmNotMigratable.remedy}`,
      },
    },
  ] as { name: string; vmis: VirtualMachineInstance[]; want?: object }[])(
    'unready VMs: $name',
    ({ vmis, want }) => {
      expect(failure(unreadyVmis(vmis))).toEqual(want);
    },
  );

  const ours = snapshot('ours', '2026-01-01T00:00:10Z', { phase: 'Planning' });
  it.each([
    { name: 'no other snapshot', others: [ours], want: undefined },
    {
      name: 'an older one not planned yet',
      others: [snapshot('old', '2026-01-01T00:00:05Z', { phase: 'Planning' })],
      want: 'old',
    },
    {
      name: 'a newer one not planned yet',
      others: [snapshot('new', '2026-01-01T00:00:20Z')],
      want: undefined,
    },
    {
      name: 'one in flight holding one of our VMs',
      others: [snapshot('busy', '2026-01-01T00:00:20Z', { phase: 'Snapshotting', vms: [{ name: 'a' }] })],
      want: 'busy',
    },
    {
      name: 'one in flight with other VMs',
      others: [snapshot('other', '2026-01-01T00:00:01Z', { phase: 'Snapshotting', vms: [{ name: 'z' }] })],
      want: undefined,
    },
    {
      name: 'one that ended',
      others: [
        snapshot('done', '2026-01-01T00:00:01Z', { phase: 'Succeeded', vms: [{ name: 'a' }] }),
        snapshot('failed', '2026-01-01T00:00:01Z', { phase: 'Failed' }),
      ],
      want: undefined,
    },
  ] as { name: string; others: DistributedSnapshot[]; want?: string }[])(
    'blocking snapshot: $name',
    ({ others, want }) => {
      expect(blockingSnapshot(ours, others, [vmi('a')])).toBe(want);
    },
  );

  it('plans one pre-snapshot row per VM', () => {
    expect(plannedStatus({ phase: 'Planning' }, [vmi('a'), vmi('b', { nodeName: 'worker-2' })])).toEqual({
      phase: 'Snapshotting',
      progress: '0/2',
      vms: [
        { name: 'a', node: 'worker-1', phase: 'Pending', epoch: 'Pre' },
        { name: 'b', node: 'worker-2', phase: 'Pending', epoch: 'Pre' },
      ],
    });
  });
});

describe('Snapshotting', () => {
  const network = (state: SnapshotNetworkStatus['state'], abortReason?: string): SnapshotNetworkStatus =>
    ({
      snapshotId: 's',
      mode: 'Buffer',
      state,
      epochs: {},
      counters: {},
      ...(abortReason ? { abortReason } : {}),
    }) as SnapshotNetworkStatus;

  it.each([
    { state: 'Armed', reason: undefined, want: undefined },
    {
      state: 'Aborted',
      reason: 'buffer limit reached',
      want: {
        reason: 'NetworkAborted',
        message: 'the OpenFlow controller aborted the snapshot: buffer limit reached',
      },
    },
    {
      state: 'Aborted',
      reason: undefined,
      want: {
        reason: 'NetworkAborted',
        message: 'the OpenFlow controller aborted the snapshot: no reason given',
      },
    },
  ] as { state: SnapshotNetworkStatus['state']; reason?: string; want?: object }[])(
    'network $state ($reason)',
    ({ state, reason, want }) => {
      expect(failure(networkAbortFailure(network(state, reason)))).toEqual(want);
    },
  );

  it('orders rows by their skew-aligned start, and finds the first S_i', () => {
    const rows: Row[] = [
      { name: 'a' },
      { name: 'b', snapshotStart: at(30).toISOString() },
      { name: 'c', snapshotStart: at(10).toISOString() },
    ];
    expect(
      startOrder(
        rows,
        new Map([
          ['a', 50],
          ['b', 0],
          ['c', 20],
        ]),
      ),
    ).toEqual([1, 2, 0]);
    expect(startOrder(rows, new Map())).toEqual([0, 1, 2]);
    expect(firstSnapshotStart(rows)).toBe(Date.parse(T0) + 10);
    expect(firstSnapshotStart([{ name: 'a' }])).toBeUndefined();
  });

  it.each([
    { name: 'no VM started, no offset', offset: 0, first: undefined, now: 0, want: 0 },
    { name: 'no VM started, an offset', offset: 300, first: undefined, now: 0, want: 300 },
    { name: 'offset from the first S_i, not due', offset: 300, first: 0, now: 100, want: 200 },
    { name: 'offset from the first S_i, due', offset: 300, first: 0, now: 400, want: 0 },
  ])('start: $name', ({ offset, first, now, want }) => {
    const firstStart = first === undefined ? undefined : Date.parse(T0) + first;
    expect(msUntilStart(offset, firstStart, at(now))).toBe(want);
  });

  const done = (name: string, capturedAt: number): Row => ({
    name,
    phase: 'Captured',
    epoch: 'Post',
    capturedAt: at(capturedAt).toISOString(),
    resumedAt: at(capturedAt + 5).toISOString(),
  });
  it.each([
    {
      name: 'a capture recorded, not yet advanced',
      rows: [{ name: 'a', phase: 'Captured' }, done('b', 0)],
      requeue: 1,
      progress: '1/2',
    },
    {
      name: 'a capture in flight',
      rows: [
        { name: 'a', phase: 'Capturing' },
        { name: 'b', phase: 'Migrating' },
      ],
      requeue: 20,
      progress: '0/2',
    },
    {
      name: 'only migrations',
      rows: [
        { name: 'a', phase: 'Migrating' },
        { name: 'b', phase: 'Pending' },
      ],
      requeue: 250,
      progress: '0/2',
    },
    {
      name: 'advanced, not resumed',
      rows: [{ name: 'a', phase: 'Captured', epoch: 'Post', resumedAt: undefined }],
      requeue: 1,
      progress: '0/1',
    },
  ] as { name: string; rows: Row[]; requeue: number; progress: string }[])(
    'still snapshotting: $name',
    ({ rows, requeue, progress }) => {
      const step = snapshottingStep({ phase: 'Snapshotting' }, rows, 250);
      expect(step).toEqual({
        status: { phase: 'Snapshotting', vms: rows, progress },
        requeueAfterMs: requeue,
      });
    },
  );

  it('looks at a capture in flight no later than the poll interval', () => {
    expect(snapshottingStep({}, [{ name: 'a', phase: 'Capturing' }], 5).requeueAfterMs).toBe(5);
  });

  it('commits once every VM is post-snapshot and running, with the T_i skew', () => {
    const rows = [done('a', 0), done('b', 120)];
    expect(snapshottingStep({ phase: 'Snapshotting' }, rows, 250)).toEqual({
      status: { phase: 'Committing', vms: rows, progress: '2/2', skewMs: 120, skew: '120ms' },
      requeueAfterMs: 1,
    });
  });
});
