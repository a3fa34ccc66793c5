// The typed Open_vSwitch API against a real ovsdb-server and ovs-vswitchd
// (userspace datapath), every result cross-checked with ovs-vsctl.
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  FAIL_MODE_BEFORE_KEY,
  OpenVswitchDb,
  OvsdbClient,
  SECURED_BY_KEY_PREFIX,
  asStringMap,
} from '../../../src/ovsdb/index.js';
import type { PortInfo } from '../../../src/ovsdb/index.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsInstance } from '../../support/ovs.js';

/** ovs-vsctl quotes a string only when it must; compare without the quotes. */
function unquote(text: string): string {
  return text.replace(/^"(.*)"$/, '$1');
}

/** Waits (bounded) until `predicate` holds for the latest value `latest()` returns. */
async function eventually<T>(latest: () => T, predicate: (value: T) => boolean, what: string): Promise<T> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const value = latest();
    if (predicate(value)) return value;
    await sleep(50);
  }
  throw new Error(`never saw ${what}; last value: ${JSON.stringify(latest())}`);
}

describe('OpenVswitchDb against real OVS', () => {
  let ovs: OvsInstance;
  let client: OvsdbClient;
  let db: OpenVswitchDb;

  beforeAll(async () => {
    ovs = await startOvs({ name: 'ovsdb' });
    client = await OvsdbClient.connect(`unix:${ovs.dbSocket}`);
    db = new OpenVswitchDb(client);
  });

  afterAll(async () => {
    client?.close();
    await ovs?.stop();
  });

  it('creates a bridge with datapath type, fail mode, controllers, protocols and other_config', async () => {
    await db.ensureBridge('br0', {
      datapathType: 'netdev',
      failMode: 'secure',
      controllers: ['tcp:127.0.0.1:6653'],
      protocols: ['OpenFlow13'],
      otherConfig: { 'disable-in-band': 'true' },
    });
    expect(await ovs.vsctl(['list-br'])).toBe('br0');
    expect(await ovs.vsctl(['get', 'Bridge', 'br0', 'datapath_type'])).toBe('netdev');
    expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('secure');
    expect(await ovs.vsctl(['get-controller', 'br0'])).toBe('tcp:127.0.0.1:6653');
    expect(await ovs.vsctl(['get', 'Bridge', 'br0', 'protocols'])).toBe('[OpenFlow13]');
    expect(unquote(await ovs.vsctl(['get', 'Bridge', 'br0', 'other_config:disable-in-band']))).toBe('true');
    // ensureBridge returned only after ovs-vswitchd applied it: the switch answers OpenFlow now.
    expect(await ovs.ofctl(['-O', 'OpenFlow13', 'show', 'br0'])).toContain('OFPT_FEATURES_REPLY');
    expect(await db.listBridges()).toEqual(['br0']);
  });

  it('converges an existing bridge instead of creating a second one, keeping other other_config keys', async () => {
    await db.ensureBridge('br0', {
      failMode: 'standalone',
      controllers: ['tcp:127.0.0.1:6653', 'unix:/tmp/never-there.sock'],
      otherConfig: { 'datapath-id': '00000000000000aa' },
    });
    expect(await ovs.vsctl(['list-br'])).toBe('br0');
    expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('standalone');
    expect((await ovs.vsctl(['get-controller', 'br0'])).split('\n').sort()).toEqual([
      'tcp:127.0.0.1:6653',
      'unix:/tmp/never-there.sock',
    ]);
    expect(unquote(await ovs.vsctl(['get', 'Bridge', 'br0', 'other_config:datapath-id']))).toBe(
      '00000000000000aa',
    );
    expect(unquote(await ovs.vsctl(['get', 'Bridge', 'br0', 'other_config:disable-in-band']))).toBe('true');
    expect(await ovs.vsctl(['get', 'Bridge', 'br0', 'datapath_type'])).toBe('netdev');
  });

  it('sets and reads controllers, agreeing with ovs-vsctl both ways', async () => {
    await db.setControllers('br0', ['tcp:127.0.0.1:6654']);
    expect(await ovs.vsctl(['get-controller', 'br0'])).toBe('tcp:127.0.0.1:6654');
    expect(await db.getControllers('br0')).toEqual(['tcp:127.0.0.1:6654']);

    await ovs.vsctl(['set-controller', 'br0', 'tcp:127.0.0.1:7000', 'tcp:127.0.0.1:7001']);
    expect(await db.getControllers('br0')).toEqual(['tcp:127.0.0.1:7000', 'tcp:127.0.0.1:7001']);

    await db.setControllers('br0', []);
    expect(await ovs.vsctl(['get-controller', 'br0'])).toBe('');
    expect(await db.getControllers('br0')).toEqual([]);
  });

  it('sets and reads the fail mode, agreeing with ovs-vsctl both ways', async () => {
    await db.setFailMode('br0', 'secure');
    expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('secure');
    await ovs.vsctl(['set-fail-mode', 'br0', 'standalone']);
    expect(await db.getFailMode('br0')).toBe('standalone');
    await ovs.vsctl(['del-fail-mode', 'br0']);
    expect(await db.getFailMode('br0')).toBeUndefined();
  });

  it('clears the fail mode back to unset', async () => {
    await db.setFailMode('br0', 'standalone');
    await db.setFailMode('br0', undefined);
    expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('');
    expect(await db.getFailMode('br0')).toBeUndefined();
  });

  describe('securing a bridge for snapshots', () => {
    const externalIds = async (bridge: string): Promise<Record<string, string>> => {
      const [result] = await client.transact('Open_vSwitch', [
        { op: 'select', table: 'Bridge', where: [['name', '==', bridge]], columns: ['external_ids'] },
      ]);
      return asStringMap(result?.rows?.[0]?.external_ids);
    };

    it('secures a standalone bridge and restores standalone, keeping other external_ids', async () => {
      await ovs.vsctl(['set-fail-mode', 'br0', 'standalone']);
      await ovs.vsctl(['set', 'Bridge', 'br0', 'external_ids:owner=ovs-cni']);
      await db.secureBridge('br0', 'uid-a');
      expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('secure');
      expect(await externalIds('br0')).toEqual({
        owner: 'ovs-cni',
        [`${SECURED_BY_KEY_PREFIX}uid-a`]: 'true',
        [FAIL_MODE_BEFORE_KEY]: 'standalone',
      });
      expect(await db.bridgesSecuredBy('uid-a')).toEqual(['br0']);
      // A retried reconcile secures again: nothing changes, the recorded mode is still the one before.
      await db.secureBridge('br0', 'uid-a');
      expect(await externalIds('br0')).toMatchObject({ [FAIL_MODE_BEFORE_KEY]: 'standalone' });

      expect(await db.releaseBridge('br0', 'uid-a')).toEqual({ kind: 'restored', failMode: 'standalone' });
      expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('standalone');
      expect(await externalIds('br0')).toEqual({ owner: 'ovs-cni' });
      expect(await db.bridgesSecuredBy('uid-a')).toEqual([]);
      // Released twice: the second finds nothing to do and changes nothing.
      expect(await db.releaseBridge('br0', 'uid-a')).toEqual({ kind: 'not-held' });
      expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('standalone');
      await ovs.vsctl(['remove', 'Bridge', 'br0', 'external_ids', 'owner']);
    });

    it('secures a bridge with no fail mode and clears the column again on release', async () => {
      await ovs.vsctl(['del-fail-mode', 'br0']);
      await db.secureBridge('br0', 'uid-a');
      expect(await db.getFailMode('br0')).toBe('secure');
      expect(await externalIds('br0')).toMatchObject({ [FAIL_MODE_BEFORE_KEY]: 'unset' });
      expect(await db.releaseBridge('br0', 'uid-a')).toEqual({ kind: 'restored', failMode: undefined });
      expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('');
      expect(await externalIds('br0')).toEqual({});
    });

    it('with two holders, the first release keeps the bridge secure and the last restores', async () => {
      await ovs.vsctl(['set-fail-mode', 'br0', 'standalone']);
      await db.secureBridge('br0', 'uid-a');
      await db.secureBridge('br0', 'uid-b');
      // The second holder found it secure already, but the mode to come back to is still the first's record.
      expect(await externalIds('br0')).toMatchObject({ [FAIL_MODE_BEFORE_KEY]: 'standalone' });
      expect(await db.releaseBridge('br0', 'uid-a')).toEqual({ kind: 'held', holders: ['uid-b'] });
      expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('secure');
      expect(await db.releaseBridge('br0', 'uid-b')).toEqual({ kind: 'restored', failMode: 'standalone' });
      expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('standalone');
      expect(await externalIds('br0')).toEqual({});
    });

    it('holders securing and releasing at once over separate connections never lose the mode before', async () => {
      await ovs.vsctl(['set-fail-mode', 'br0', 'standalone']);
      const holders = ['h1', 'h2', 'h3', 'h4', 'h5'];
      const clients = await Promise.all(holders.map(() => OvsdbClient.connect(`unix:${ovs.dbSocket}`)));
      try {
        const dbs = clients.map((c) => new OpenVswitchDb(c));
        // Each read sees no holder yet, so each tries to record the mode before: the `wait` lets one win.
        await Promise.all(dbs.map((each, i) => each.secureBridge('br0', holders[i] ?? '')));
        const ids = await externalIds('br0');
        expect(ids[FAIL_MODE_BEFORE_KEY]).toBe('standalone');
        expect(
          Object.keys(ids)
            .filter((k) => k.startsWith(SECURED_BY_KEY_PREFIX))
            .sort(),
        ).toEqual(holders.map((h) => `${SECURED_BY_KEY_PREFIX}${h}`));
        const outcomes = await Promise.all(dbs.map((each, i) => each.releaseBridge('br0', holders[i] ?? '')));
        // Exactly one release was the last, and it restored.
        expect(outcomes.filter((o) => o.kind === 'restored')).toEqual([
          { kind: 'restored', failMode: 'standalone' },
        ]);
        expect(await ovs.vsctl(['get-fail-mode', 'br0'])).toBe('standalone');
        expect(await externalIds('br0')).toEqual({});
      } finally {
        for (const c of clients) c.close();
      }
    });

    it('refuses to secure a bridge that does not exist; releasing one is a no-op', async () => {
      await expect(db.secureBridge('nobr', 'uid-a')).rejects.toThrow(
        /cannot secure nobr for uid-a: bridge does not exist/,
      );
      expect(await db.releaseBridge('nobr', 'uid-a')).toEqual({ kind: 'not-held' });
    });
  });

  it('refuses to touch a bridge that does not exist, and changes nothing', async () => {
    await expect(db.setFailMode('nobr', 'secure')).rejects.toThrow(/bridge does not exist/);
    await expect(db.setControllers('nobr', ['tcp:127.0.0.1:1'])).rejects.toThrow(/bridge does not exist/);
    await expect(db.getFailMode('nobr')).rejects.toThrow(/bridge does not exist/);
    await expect(db.listPorts('nobr')).rejects.toThrow(/no bridge named nobr/);
    expect(await ovs.vsctl(['list-br'])).toBe('br0');
    // The Controller row inserted by the failed transaction was never committed.
    expect(await ovs.vsctl(['--columns=target', 'list', 'Controller'])).toBe('');
  });

  it('lists ports with ofport, MACs and external_ids, and maps VMs in both conventions', async () => {
    const vm = await ovs.addHost('vma', '10.79.0.1/24', 'br0', { owner: { vm: 'default/vm-a' } });
    const pod = await ovs.addHost('poda', '10.79.0.2/24', 'br0', {
      owner: { podUid: 'uid-1234', iface: 'net1' },
    });
    const ports = await db.listPorts('br0');
    expect(ports.map((port) => port.name)).toEqual(['br0', 'poda', 'vma']);
    for (const host of [vm, pod]) {
      const port = ports.find((candidate) => candidate.name === host.port);
      const iface = port?.interfaces[0];
      expect(iface?.ofport).toBe(Number(await ovs.vsctl(['get', 'Interface', host.port, 'ofport'])));
      expect(iface?.ofport).toBe(host.ofport);
      expect(iface?.macInUse).toBe(unquote(await ovs.vsctl(['get', 'Interface', host.port, 'mac_in_use'])));
    }
    expect(ports.find((port) => port.name === 'vma')?.externalIds).toEqual({ 'violin-vm': 'default/vm-a' });

    const attachments = await db.findVmAttachments();
    expect(attachments).toEqual([
      {
        owner: { kind: 'pod', podUid: 'uid-1234', iface: 'net1' },
        bridge: 'br0',
        port: 'poda',
        ifaceName: 'poda',
        ofport: pod.ofport,
        macInUse: expect.any(String),
      },
      {
        owner: { kind: 'vm', vm: 'default/vm-a' },
        bridge: 'br0',
        port: 'vma',
        ifaceName: 'vma',
        ofport: vm.ofport,
        mac: vm.mac,
        macInUse: expect.any(String),
      },
    ]);
  });

  it('reports a port whose interface failed with ofport -1, and gives its attachment no ofport', async () => {
    // No device named "ghost" exists in the OVS namespace, so ovs-vswitchd cannot open it.
    await ovs.vsctl([
      'add-port',
      'br0',
      'ghost',
      '--',
      'set',
      'Port',
      'ghost',
      'external_ids:violin-vm=default/ghost',
    ]);
    try {
      expect(await ovs.vsctl(['get', 'Interface', 'ghost', 'ofport'])).toBe('-1');
      const ghost = (await db.listPorts('br0')).find((port) => port.name === 'ghost');
      expect(ghost?.interfaces[0]?.ofport).toBe(-1);
      const attachment = (await db.findVmAttachments()).find((candidate) => candidate.port === 'ghost');
      expect(attachment?.owner).toEqual({ kind: 'vm', vm: 'default/ghost' });
      expect(attachment).not.toHaveProperty('ofport');
    } finally {
      await ovs.vsctl(['del-port', 'br0', 'ghost']);
    }
  });

  it('watches ports: a port added and removed with ovs-vsctl shows up and goes away', async () => {
    let latest: PortInfo[] = [];
    let calls = 0;
    const watch = await db.watchPorts((ports) => {
      latest = ports;
      calls++;
    });
    try {
      expect(calls).toBe(1);
      expect(latest.map((port) => port.name)).toEqual(['br0', 'poda', 'vma']);

      await ovs.vsctl([
        ...['add-port', 'br0', 'tapw', '--', 'set', 'Interface', 'tapw', 'type=internal'],
        ...['--', 'set', 'Port', 'tapw', 'external_ids:violin-vm=default/vm-w'],
      ]);
      const expectedOfport = Number(await ovs.vsctl(['get', 'Interface', 'tapw', 'ofport']));
      const seen = await eventually(
        () => latest.find((port) => port.name === 'tapw'),
        (port) => port?.interfaces[0]?.ofport === expectedOfport,
        'port tapw with its ofport',
      );
      expect(seen?.externalIds).toEqual({ 'violin-vm': 'default/vm-w' });
      expect(seen?.bridge).toBe('br0');

      await ovs.vsctl(['del-port', 'br0', 'tapw']);
      await eventually(
        () => latest.map((port) => port.name),
        (names) => !names.includes('tapw'),
        'tapw removed',
      );
    } finally {
      await watch.cancel();
    }
  });

  it('deletes a bridge', async () => {
    await db.ensureBridge('brx', { datapathType: 'netdev' });
    expect((await ovs.vsctl(['list-br'])).split('\n')).toContain('brx');
    await db.deleteBridge('brx');
    expect((await ovs.vsctl(['list-br'])).split('\n')).not.toContain('brx');
    await expect(db.deleteBridge('brx')).rejects.toThrow(/no bridge named brx/);
  });
});
