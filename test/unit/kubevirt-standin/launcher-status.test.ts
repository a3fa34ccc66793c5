// The libvirt launcher's pure parts: the domain XML a VMI gets, and the VMI
// status patch a sync's observation turns into (written only when it changes).
import { describe, expect, it } from 'vitest';

import type { VirtualMachineInstance } from '../../../src/kubevirt/types.js';
import {
  domainName,
  domainXml,
  firmwareUuid,
  machineType,
  vmiInterfaces,
} from '../../../lab/kubevirt-standin/domain-xml.js';
import { vmiStatusFor } from '../../../lab/kubevirt-standin/vmi-status.js';

function vmi(
  spec: Record<string, unknown> = {},
  status: VirtualMachineInstance['status'] = {},
): VirtualMachineInstance {
  return {
    metadata: { namespace: 'bank', name: 'bank-1', uid: '11111111-2222-4333-8444-555555555555' },
    spec: {
      domain: {
        memory: { guest: '128Mi' },
        firmware: { kernelBoot: { kernelArgs: 'console=ttyS0 violin.ip=10.0.0.1/24' } },
        devices: { interfaces: [{ name: 'bank', macAddress: '02:00:00:00:00:AA' }] },
      },
      networks: [{ name: 'bank', multus: { networkName: 'bank-net' } }],
      ...spec,
    },
    status,
  };
}

describe('domain XML', () => {
  it('names the domain <namespace>_<name> and carries the firmware UUID, machine type, MAC and tap', () => {
    const withFirmware = vmi();
    (withFirmware.spec.domain as Record<string, unknown>).firmware = {
      uuid: '5e1c0f5e-0000-4000-8000-000000000001',
      kernelBoot: { kernelArgs: 'console=ttyS0' },
    };
    (withFirmware.spec.domain as Record<string, unknown>).machine = { type: 'pc-q35-7.2' };
    const xml = domainXml(withFirmware, { taps: { bank: 'tap7' }, emulator: '/usr/bin/qemu-system-x86_64' });
    expect(domainName('bank', 'bank-1')).toBe('bank_bank-1');
    expect(xml).toContain('<name>bank_bank-1</name>');
    expect(xml).toContain('<uuid>5e1c0f5e-0000-4000-8000-000000000001</uuid>');
    expect(xml).toContain('<entry name="uuid">5e1c0f5e-0000-4000-8000-000000000001</entry>');
    expect(xml).toContain('machine="pc-q35-7.2"');
    expect(xml).toContain('<domain type="qemu"');
    expect(xml).toContain('<mac address="02:00:00:00:00:aa"/>');
    expect(xml).toContain('<target dev="tap7" managed="no"/>');
    expect(xml).toContain('<memory unit="b">134217728</memory>');
    expect(xml).toContain(
      '<log file="/var/run/kubevirt-private/11111111-2222-4333-8444-555555555555/virt-serial0-log" append="on"/>',
    );
  });

  it.each([['no firmware UUID: the VMI uid', vmi(), '11111111-2222-4333-8444-555555555555']])(
    '%s',
    (_what, input, uuid) => {
      expect(firmwareUuid(input)).toBe(uuid);
      expect(machineType(input)).toBe('q35');
    },
  );

  it('gives secondary networks KubeVirt hashed pod interface names and the pod network eth0', () => {
    expect(vmiInterfaces(vmi())[0]?.podInterfaceName).toMatch(/^pod[0-9a-f]{11}$/);
    expect(vmiInterfaces(vmi({ networks: [{ name: 'bank', pod: {} }] }))[0]?.podInterfaceName).toBe('eth0');
  });

  it.each([
    [
      'a MAC missing',
      {
        domain: {
          firmware: { kernelBoot: { kernelArgs: 'x' } },
          devices: { interfaces: [{ name: 'bank' }] },
        },
      },
      /needs a macAddress/,
    ],
    [
      'kernel arguments missing',
      { domain: { devices: { interfaces: [{ name: 'bank', macAddress: '02:00:00:00:00:01' }] } } },
      /kernelArgs is empty/,
    ],
    [
      'an odd memory quantity',
      { domain: { memory: { guest: '1Ti' }, firmware: { kernelBoot: { kernelArgs: 'x' } } } },
      /not a quantity/,
    ],
  ])('refuses a VMI with %s, naming it', (_what, spec, message) => {
    expect(() => domainXml(vmi(spec), { taps: { bank: 'tap1' }, emulator: 'qemu' })).toThrow(message);
  });
});

describe('VMI status from a sync', () => {
  const pods = { 'aaaaaaaa-0000-4000-8000-000000000000': 'node-1' };
  it.each([
    ['nothing changed', vmi({}, { activePods: pods }), { paused: false, activePods: pods }, undefined],
    [
      'paused through the subresource',
      vmi({}, { activePods: pods }),
      { paused: true, activePods: pods },
      { conditions: [expect.objectContaining({ type: 'Paused', status: 'True', reason: 'PausedByUser' })] },
    ],
    [
      'unpaused',
      vmi(
        {},
        {
          activePods: pods,
          conditions: [
            { type: 'Ready', status: 'True' },
            { type: 'Paused', status: 'True' },
          ],
        },
      ),
      { paused: false, activePods: pods },
      { conditions: [{ type: 'Ready', status: 'True' }] },
    ],
    [
      'a new pod after a migration',
      vmi({}, { activePods: pods }),
      { paused: false, activePods: { 'bbbbbbbb-0000-4000-8000-000000000000': 'node-2' } },
      {
        activePods: {
          'aaaaaaaa-0000-4000-8000-000000000000': null,
          'bbbbbbbb-0000-4000-8000-000000000000': 'node-2',
        },
      },
    ],
    [
      'the domain saved',
      vmi({}, { activePods: pods }),
      {
        paused: false,
        activePods: pods,
        ended: { phase: 'Succeeded' as const, reason: 'the domain shut off (saved)' },
      },
      { phase: 'Succeeded', reason: 'the domain shut off (saved)' },
    ],
  ])('%s', (_what, current, observed, patch) => {
    const result = vmiStatusFor(current, observed);
    if (patch === undefined) expect(result).toBeUndefined();
    else expect(result).toEqual(patch);
  });
});
