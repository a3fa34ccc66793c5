import { describe, expect, it } from 'vitest';

import { AgentError } from '../../agent/errors.js';
import { OfcError } from '../../ofc/control/errors.js';
import { checkStorageLocation } from '../../store/backend-for.js';
import { DEFAULT_STORAGE_ROOT } from '../../store/confinement.js';
import {
  classifyPartError,
  classMessage,
  FAILURE_CLASSES,
  storageLocationRefusal,
  waitingOn,
  type FailureClass,
} from './failure-classes.js';

describe('the failure classes', () => {
  // The table as a user meets it: the reason a condition shows, terminal or waited out, and the field named.
  it.each([
    ['bufferTierUnavailable', 'BufferTierUnavailable', true, 'spec.network.bufferTier'],
    ['networkRefused', 'NetworkRefused', true, 'spec.network'],
    ['storageLocationRefused', 'StorageLocationRefused', true, 'spec.storageLocation'],
    ['noVmsSelected', 'NoVMsSelected', true, 'spec.selector'],
    ['noSnapshotHosts', 'NoSnapshotHosts', true, 'spec.snapshotHosts.nodeSelector'],
    ['vmNotMigratable', 'VMNotMigratable', true, 'spec.selector'],
    ['noNetworkInterface', 'NoNetworkInterface', true, 'spec.selector'],
    ['vmNotOnSwitch', 'VMNotOnSwitch', true, 'spec.selector'],
    ['bridgeNotConnected', 'BridgeNotConnected', true, undefined],
    ['failModeNotSecured', 'FailModeNotSecured', true, undefined],
    ['noTargetNodes', 'NoTargetNodes', true, 'spec.placement.nodeSelector'],
    ['crossNamespaceRefused', 'CrossNamespaceRefused', true, 'spec.targetNamespace'],
    ['machineTypeUnavailable', 'MachineTypeUnavailable', true, 'spec.placement.nodeSelector'],
    ['vmNotPausable', 'VMNotPausable', true, 'spec.selector'],
    ['waitingForOfc', 'WaitingForOFC', false, undefined],
    ['waitingForAgent', 'WaitingForAgent', false, undefined],
    ['waitingForBridge', 'WaitingForBridge', false, undefined],
  ] as const)('%s: reason %s, terminal %s, field %s', (name, reason, terminal, field) => {
    const cls: FailureClass = FAILURE_CLASSES[name];
    expect(cls).toMatchObject({ reason, terminal });
    expect(cls.field).toBe(field);
    // A terminal class names the field and says what to change; a wait says what is awaited.
    const text = classMessage(cls, 'detail');
    expect(text.startsWith('detail; ')).toBe(true);
    if (field) expect(text).toContain(`${field}: `);
    expect(cls.remedy.length).toBeGreaterThan(20);
  });

  it('every class is in the table above', () => {
    expect(Object.keys(FAILURE_CLASSES).length).toBe(17);
  });

  it.each([
    [new OfcError('NotImplemented', "bufferTier 'datapath' needs buffer ports"), 'BufferTierUnavailable'],
    [new OfcError('BadRequest', 'mode must be one of Buffer, Drop, Off'), 'NetworkRefused'],
    [new OfcError('Conflict', 'armed already'), 'NetworkRefused'],
    [new OfcError('Unavailable', 'connect ECONNREFUSED', { notDelivered: true }), 'WaitingForOFC'],
    [new OfcError('SwitchError', 'bridge br0 timed out'), 'WaitingForOFC'],
    [new AgentError('Unavailable', 'agent http://node-1: ECONNRESET'), 'WaitingForAgent'],
    [new AgentError('Integrity', 'digest differs'), undefined],
    [new Error('anything else'), undefined],
  ])('classifies %s as %s', (err, reason) => {
    expect(classifyPartError(err)?.reason).toBe(reason);
  });

  it('shows a wait only for an outage', () => {
    expect(waitingOn(new OfcError('Unavailable', 'connect ECONNREFUSED'))).toEqual({
      reason: 'WaitingForOFC',
      message: `connect ECONNREFUSED; ${FAILURE_CLASSES.waitingForOfc.remedy}`,
    });
    expect(waitingOn(new OfcError('NotImplemented', 'no tier'))).toBeUndefined();
    expect(waitingOn(new Error('x'))).toBeUndefined();
  });

  it.each([
    ['file:///var/lib/violin/bundles', undefined],
    ['file:///var/lib/violin/bundles/../../../run/kubevirt', 'StorageLocationRefused'],
    ['file:///tmp/bundles', 'StorageLocationRefused'],
    ['s3://bundles/bank', undefined],
    ['s3://bundles/bank?region=eu', 'StorageLocationRefused'],
    ['s3://Bundles_Bank/bank', 'StorageLocationRefused'],
    ['gs://bundles/bank', 'StorageLocationRefused'],
    ['not a url', 'StorageLocationRefused'],
  ])('storage location %s: %s', async (location, reason) => {
    const store = {
      checkLocation: (at: string) => checkStorageLocation(at, { fileRoot: DEFAULT_STORAGE_ROOT }),
    };
    expect((await storageLocationRefusal(location, store))?.cls.reason).toBe(reason);
  });
});
