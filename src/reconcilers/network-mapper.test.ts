import { describe, expect, it } from 'vitest';

import type { VirtualMachineInstance } from '../kubevirt/types.js';
import type { VmAttachment } from '../ovsdb/open-vswitch.js';
import { parseAgentMap, parseVmBackend } from './environment.js';
import { OvsdbNetworkMapper } from './network-mapper.js';

function vmi(
  name: string,
  mac: string,
  activePods: Record<string, string> = {},
  nodeName?: string,
): VirtualMachineInstance {
  return {
    metadata: { name, namespace: 'shop' },
    spec: {},
    status: { interfaces: [{ name: 'violin', mac: mac.toUpperCase() }], activePods, nodeName },
  };
}

const port = (bridge: string, ofport: number | undefined, rest: Partial<VmAttachment>): VmAttachment => ({
  owner: { kind: 'vm', vm: 'nobody' },
  bridge,
  port: `p${ofport}`,
  ifaceName: `i${ofport}`,
  ...(ofport === undefined ? {} : { ofport }),
  ...rest,
});

describe('OvsdbNetworkMapper', () => {
  it('finds a VM by lab owner name, by attached MAC, or by its virt-launcher pod (ovs-cni)', async () => {
    const mapper = new OvsdbNetworkMapper({
      findVmAttachments: async () => [
        port('br-a', 3, { owner: { kind: 'vm', vm: 'shop/web' } }),
        port('br-b', 4, { mac: '52:54:00:00:00:02' }),
        port('br-c', 5, { owner: { kind: 'pod', podUid: 'uid-db', iface: 'net1' } }),
        port('br-d', undefined, { owner: { kind: 'vm', vm: 'shop/cache' } }),
      ],
    });
    const found = await mapper.findVmAttachments([
      vmi('web', '52:54:00:00:00:01'),
      vmi('api', '52:54:00:00:00:02'),
      vmi('db', '52:54:00:00:00:03', { 'uid-db': 'node1' }),
      vmi('cache', '52:54:00:00:00:04'),
    ]);
    expect(found.get('shop/web')).toEqual({ bridge: 'br-a', ofport: 3, mac: '52:54:00:00:00:01' });
    expect(found.get('shop/api')).toEqual({ bridge: 'br-b', ofport: 4, mac: '52:54:00:00:00:02' });
    expect(found.get('shop/db')).toEqual({ bridge: 'br-c', ofport: 5, mac: '52:54:00:00:00:03' });
    // A port without an OpenFlow port number cannot carry rules yet: not attached.
    expect(found.has('shop/cache')).toBe(false);
  });

  it("takes the port of the launcher pod on the VMI's node while a migration's target pod has one too", async () => {
    const source = { kind: 'pod', podUid: 'uid-source', iface: 'net1' } as const;
    const target = { kind: 'pod', podUid: 'uid-target', iface: 'net1' } as const;
    const mapper = new OvsdbNetworkMapper({
      // The target's bridge sorts first, as node-1 does before snap-1 on a migration back.
      findVmAttachments: async () => [
        port('node-1', 7, { owner: target }),
        port('snap-1', 3, { owner: source }),
      ],
    });
    const pods = { 'uid-source': 'snap-1', 'uid-target': 'node-1' };
    const before = await mapper.findVmAttachments([vmi('db', '52:54:00:00:00:03', pods, 'snap-1')]);
    expect(before.get('shop/db')).toEqual({ bridge: 'snap-1', ofport: 3, mac: '52:54:00:00:00:03' });
    // After the handover KubeVirt sets status.nodeName to the target's node.
    const after = await mapper.findVmAttachments([vmi('db', '52:54:00:00:00:03', pods, 'node-1')]);
    expect(after.get('shop/db')).toEqual({ bridge: 'node-1', ofport: 7, mac: '52:54:00:00:00:03' });
  });
});

describe('VIOLIN_AGENTS', () => {
  it('parses node=url pairs and names a bad entry', () => {
    expect(parseAgentMap('n1=http://127.0.0.1:9001, n2=http://10.0.0.2:9464')).toEqual(
      new Map([
        ['n1', 'http://127.0.0.1:9001'],
        ['n2', 'http://10.0.0.2:9464'],
      ]),
    );
    expect(parseAgentMap(undefined).size).toBe(0);
    expect(() => parseAgentMap('n1=127.0.0.1:9001')).toThrow(/"n1=127.0.0.1:9001" is not node=http/);
  });
});

describe('VIOLIN_VM_BACKEND', () => {
  it.each([
    [undefined, 'libvirt'],
    ['', 'libvirt'],
    ['qemu', 'qemu'],
    [' libvirt ', 'libvirt'],
  ])('%j is %s', (text, backend) => {
    expect(parseVmBackend(text)).toBe(backend);
  });

  it('refuses anything else, naming it', () => {
    expect(() => parseVmBackend('kvm')).toThrow('VIOLIN_VM_BACKEND "kvm" is not qemu or libvirt');
  });
});
