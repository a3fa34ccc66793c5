// The restore's next status for every phase and every failure the pure
// functions decide, one table each.
import { describe, expect, it } from 'vitest';

import type { SnapshotRestoreStatus as Status, SnapshotRestoreStatusVm as Row } from '../../api/index.js';
import type { VirtualMachine, VirtualMachineInstance } from '../../kubevirt/types.js';
import type { BundleVm } from '../../store/manifest.js';
import { FAILURE_CLASSES } from '../shared/failure-classes.js';
import { RestoreFailure } from './failure.js';
import {
  acceptedStatus,
  collisionFailure,
  endsWith,
  failedStatus,
  isFinal,
  launcherToLoad,
  loadedRow,
  loadedStatus,
  machineTypeMismatch,
  machineTypeRefusal,
  outcomes,
  PAUSED_GRACE_MS,
  resumedRow,
  succeededStatus,
  timeoutFailure,
  validatedStatus,
  validatingStatus,
  withConditions,
} from './next-status.js';

const T0 = Date.UTC(2026, 0, 1);
const at = (ms: number): Date => new Date(T0 + ms);
const PHASES: Status['phase'][] = [
  undefined,
  'Pending',
  'Validating',
  'Loading',
  'Resuming',
  'Succeeded',
  'Failed',
];

const saved = (name: string, mac: string): BundleVm => ({ name, mac }) as BundleVm;
const running = (name: string, mac?: string): VirtualMachineInstance =>
  ({ metadata: { name }, spec: {}, status: { interfaces: mac ? [{ mac }] : [] } }) as VirtualMachineInstance;
const stopped = (name: string): VirtualMachine => ({ metadata: { name }, spec: {} }) as VirtualMachine;

function failure(f: RestoreFailure | undefined): { reason: string; message: string } | undefined {
  return f && { reason: f.reason, message: f.message };
}

describe('phase predicates', () => {
  it.each(PHASES)('phase %s', (phase) => {
    const final = phase === 'Succeeded' || phase === 'Failed';
    expect(isFinal(phase)).toBe(final);
    expect(endsWith({ phase: 'Resuming' }, { phase })).toBe(final);
    expect(endsWith({ phase }, { phase })).toBe(false);
  });
});

describe('status around every step', () => {
  it.each([
    { name: 'not started', status: {}, now: 3_600_000, timeout: undefined, want: undefined },
    {
      name: 'within the default 10m',
      status: { phase: 'Loading', startTime: at(0).toISOString() },
      now: 600_000,
      timeout: undefined,
      want: undefined,
    },
    {
      name: 'past the default',
      status: { phase: 'Loading', startTime: at(0).toISOString() },
      now: 600_001,
      timeout: undefined,
      want: {
        reason: 'Timeout',
        message: 'restore did not complete within spec.timeout 10m (phase Loading)',
      },
    },
    {
      name: 'past spec.timeout',
      status: { phase: 'Validating', startTime: at(0).toISOString() },
      now: 5_001,
      timeout: '5s',
      want: {
        reason: 'Timeout',
        message: 'restore did not complete within spec.timeout 5s (phase Validating)',
      },
    },
  ] as { name: string; status: Status; now: number; timeout?: string; want?: object }[])(
    'timeout: $name',
    ({ status, now, timeout, want }) => {
      expect(failure(timeoutFailure(timeout, status, at(now)))).toEqual(want);
    },
  );

  it('accepts afresh, then validates', () => {
    expect(acceptedStatus(at(1), 'libvirt')).toEqual({
      phase: 'Pending',
      startTime: at(1).toISOString(),
      backend: 'libvirt',
    });
    expect(validatingStatus({ phase: 'Pending', startTime: 'x' })).toEqual({
      phase: 'Validating',
      startTime: 'x',
    });
  });

  it.each([
    { status: { phase: 'Loading' }, ready: 'False', progressing: 'True', degraded: 'False' },
    {
      status: { phase: 'Succeeded', vms: [{ name: 'a' }] },
      ready: 'True',
      progressing: 'False',
      degraded: 'False',
    },
    {
      status: { phase: 'Failed', failureReason: 'LoadFailed', failureMessage: 'm' },
      ready: 'False',
      progressing: 'False',
      degraded: 'True',
    },
  ] as { status: Status; ready: string; progressing: string; degraded: string }[])(
    'conditions for $status.phase',
    ({ status, ready, progressing, degraded }) => {
      const written = withConditions(status, 2, at(0));
      expect(written.observedGeneration).toBe(2);
      const byType = new Map(written.conditions?.map((c) => [c.type, c.status]));
      expect([byType.get('Ready'), byType.get('Progressing'), byType.get('Degraded')]).toEqual([
        ready,
        progressing,
        degraded,
      ]);
      if (status.phase === 'Succeeded') {
        expect(written.conditions?.find((c) => c.type === 'Ready')?.message).toBe(
          '1 VM(s) restored and running',
        );
      }
    },
  );

  it('fails: rows not resumed are Failed with what unloading them did; resumed ones keep running', () => {
    const rows: Row[] = [
      { name: 'a', phase: 'Resumed', message: 'running' },
      { name: 'b', phase: 'Loaded', message: 'loaded, paused' },
      { name: 'c', phase: 'Pending' },
    ];
    const status = failedStatus(
      { phase: 'Resuming', startTime: 'x' },
      new RestoreFailure('ResumeFailed', 'resuming b failed'),
      rows,
      new Map([['b', 'unloaded: its QEMU was stopped']]),
      at(9),
    );
    expect(status).toEqual({
      phase: 'Failed',
      startTime: 'x',
      failureReason: 'ResumeFailed',
      failureMessage: 'resuming b failed',
      completionTime: at(9).toISOString(),
      vms: [
        { name: 'a', phase: 'Resumed', message: 'running' },
        { name: 'b', phase: 'Failed', message: 'unloaded: its QEMU was stopped' },
        { name: 'c', phase: 'Failed' },
      ],
    });
  });
});

describe('Validating', () => {
  const bundle = [saved('a', '52:54:00:00:00:0A'), saved('b', '52:54:00:00:00:0b')];
  it.each([
    { name: 'an empty namespace', vmis: [], vms: [], want: undefined },
    {
      name: 'other VMs with other MACs',
      vmis: [running('x', '52:54:00:00:00:99')],
      vms: [stopped('y')],
      want: undefined,
    },
    {
      name: 'a running VMI and a stopped VM of the same names',
      vmis: [running('b')],
      vms: [stopped('a'), stopped('b')],
      want: {
        reason: 'NameCollision',
        message:
          'namespace t already has VM(s) named a, b; restore into another namespace (spec.targetNamespace) or delete them first',
      },
    },
    {
      name: "a VMI using one of the bundle's MACs (in any case)",
      vmis: [running('x', '52:54:00:00:00:0a')],
      vms: [],
      want: {
        reason: 'MacCollision',
        message:
          'namespace t already uses MAC(s) 52:54:00:00:00:0a (x, wanted by a); two VMs with one MAC break the network',
      },
    },
  ] as { name: string; vmis: VirtualMachineInstance[]; vms: VirtualMachine[]; want?: object }[])(
    'collisions: $name',
    ({ vmis, vms, want }) => {
      expect(failure(collisionFailure(bundle, 't', vmis, vms))).toEqual(want);
    },
  );

  it.each([
    { nodes: ['n1'], want: ['n1', 'n1', 'n1'] },
    { nodes: ['n1', 'n2'], want: ['n1', 'n2', 'n1'] },
  ])('places the VMs over $nodes in a stable order', ({ nodes, want }) => {
    const status = validatedStatus(
      { phase: 'Validating' },
      [saved('a', ''), saved('b', ''), saved('c', '')],
      nodes,
    );
    expect(status.phase).toBe('Loading');
    expect(status.vms).toEqual(['a', 'b', 'c'].map((name, i) => ({ name, node: want[i], phase: 'Pending' })));
  });
});

describe('Loading and Resuming', () => {
  const rows: Row[] = [
    { name: 'a', node: 'n1', phase: 'Pending' },
    { name: 'b', node: 'n2', phase: 'Pending' },
  ];

  it('loads paused, then resumes every VM with the spread of their resume times', () => {
    const loaded = rows.map((row) => loadedRow(row, 'T'));
    expect(loaded[0]).toEqual({
      name: 'a',
      node: 'n1',
      phase: 'Loaded',
      loadedAt: 'T',
      message: 'loaded, paused',
    });
    expect(loadedStatus({ phase: 'Loading' }, loaded)).toEqual({ phase: 'Resuming', vms: loaded });
    const resumed = [
      resumedRow(loaded[0]!, at(100).toISOString()),
      resumedRow(loaded[1]!, at(103).toISOString()),
    ];
    expect(resumed[1]).toMatchObject({
      phase: 'Resumed',
      restoredAt: at(103).toISOString(),
      message: 'running',
    });
    expect(succeededStatus({ phase: 'Resuming' }, resumed, at(200))).toEqual({
      phase: 'Succeeded',
      vms: resumed,
      resumeSkewMs: 3,
      completionTime: at(200).toISOString(),
    });
  });

  const loaded = (row: Row): PromiseSettledResult<Row> => ({
    status: 'fulfilled',
    value: loadedRow(row, 'T'),
  });
  const rejected = (reason: unknown): PromiseSettledResult<Row> => ({ status: 'rejected', reason });
  it.each([
    { name: 'every call succeeded', settled: [loaded(rows[0]!), loaded(rows[1]!)], thrown: undefined },
    {
      name: 'a failure, carrying the rows the other calls reached',
      settled: [loaded(rows[0]!), rejected(new RestoreFailure('LoadFailed', 'loading b failed'))],
      thrown: { reason: 'LoadFailed', message: 'loading b failed', vms: [loadedRow(rows[0]!, 'T'), rows[1]] },
    },
    {
      name: 'an outage and a failure: the failure wins',
      settled: [rejected(new Error('agent unreachable')), rejected(new RestoreFailure('LoadFailed', 'b'))],
      thrown: { reason: 'LoadFailed', message: 'b', vms: rows },
    },
    {
      name: 'only an outage: thrown as is, to be retried',
      settled: [rejected(new Error('agent unreachable')), loaded(rows[1]!)],
      thrown: { message: 'agent unreachable' },
    },
  ])('outcomes: $name', ({ settled, thrown }) => {
    if (thrown === undefined) {
      expect(outcomes(rows, settled)).toEqual(settled.map((s) => (s as PromiseFulfilledResult<Row>).value));
    } else {
      expect(() => outcomes(rows, settled)).toThrow(expect.objectContaining(thrown));
    }
  });
});

describe('Loading, libvirt backend', () => {
  const row: Row = { name: 'a', node: 'n1', phase: 'Starting' };
  const paused = [{ type: 'Paused', status: 'True' as const }];
  const vmi = (status: VirtualMachineInstance['status']): VirtualMachineInstance =>
    ({ metadata: { name: 'a' }, spec: {}, status }) as VirtualMachineInstance;
  const running = { phase: 'Running' as const, nodeName: 'n1', activePods: { 'pod-a': 'n1' } };

  it.each([
    { name: 'scheduling', vmi: vmi({ phase: 'Scheduling' }), ours: true, want: undefined },
    {
      name: 'running paused',
      vmi: vmi({ ...running, conditions: paused }),
      ours: true,
      want: { node: 'n1', podUid: 'pod-a' },
    },
    {
      name: 'running paused, pod on another node only (migrating away)',
      vmi: vmi({ ...running, activePods: { 'pod-x': 'n2' }, conditions: paused }),
      ours: true,
      want: undefined,
    },
    { name: 'gone', vmi: undefined, ours: false, want: { reason: 'VMGone' } },
    {
      name: 'a namesake',
      vmi: vmi({ ...running, conditions: paused }),
      ours: false,
      want: { reason: 'NameCollision' },
    },
    {
      name: 'failed',
      vmi: vmi({ phase: 'Failed', reason: 'no QEMU' }),
      ours: true,
      want: {
        reason: 'VMStartFailed',
        message: 'the VMI of a ended Failed before its state was loaded: no QEMU',
      },
    },
    {
      name: 'on another node than it preferred: loaded there',
      vmi: vmi({ ...running, nodeName: 'n2', activePods: { 'pod-b': 'n2' }, conditions: paused }),
      ours: true,
      want: { node: 'n2', podUid: 'pod-b' },
    },
    {
      name: 'running unpaused for longer than the grace',
      vmi: vmi({
        ...running,
        phaseTransitionTimestamps: [{ phase: 'Running', phaseTransitionTimestamp: at(0).toISOString() }],
      }),
      ours: true,
      want: { reason: 'VMNotPaused' },
    },
    {
      name: 'running unpaused since just now (the Paused condition may follow): waits',
      vmi: vmi({
        ...running,
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: at(10_000).toISOString() }],
      }),
      ours: true,
      want: undefined,
    },
    { name: 'running unpaused, since when unknown: waits', vmi: vmi(running), ours: true, want: undefined },
  ])('launcherToLoad: $name', ({ vmi, ours, want }) => {
    const now = at(PAUSED_GRACE_MS + 1);
    if (want === undefined || 'podUid' in want) {
      expect(launcherToLoad(row, vmi, ours, now)).toEqual(want);
    } else {
      expect(() => launcherToLoad(row, vmi, ours, now)).toThrow(expect.objectContaining(want));
    }
  });

  it.each([
    { recorded: 'pc-q35-7.2', running: 'pc-q35-7.2', want: undefined },
    { recorded: undefined, running: 'pc-q35-7.2', want: undefined },
    { recorded: 'pc-q35-7.2', running: undefined, want: undefined },
    { recorded: 'pc-q35-7.2', running: 'pc-q35-8.0', want: 'MachineTypeMismatch' },
  ])('machineTypeMismatch: saved $recorded, running $running', ({ recorded, running, want }) => {
    const started = vmi(running ? { machine: { type: running } } : {});
    expect(machineTypeMismatch(row, recorded, started)?.reason).toBe(want);
  });

  const label = (type: string): string => `machine-type.node.kubevirt.io/${type}`;
  it.each([
    { name: 'a node without labeller labels', labels: { other: 'x' }, want: undefined },
    {
      name: 'a node offering it',
      labels: { [label('pc-q35-7.2')]: 'true', [label('q35')]: 'true' },
      want: undefined,
    },
    {
      name: 'a node offering others',
      labels: { [label('pc-q35-8.0')]: 'true', [label('pc-q35-6.2')]: 'true' },
      want: {
        reason: 'MachineTypeUnavailable',
        message:
          'a was saved on machine type pc-q35-7.2, which node n1 does not offer (pc-q35-6.2, pc-q35-8.0); spec.placement.nodeSelector: ' +
          FAILURE_CLASSES.machineTypeUnavailable.remedy,
      },
    },
  ])('machineTypeRefusal: $name', ({ labels, want }) => {
    const refused = machineTypeRefusal([row], new Map([['a', 'pc-q35-7.2']]), new Map([['n1', labels]]));
    expect(failure(refused)).toEqual(want);
  });
});
