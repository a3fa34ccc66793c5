// Switch sessions against a real ovs-vswitchd: handshake and bridge naming,
// barrier-confirmed batches (accepted and refused), keep-alive both ways, and
// a malformed peer that loses only its own connection.
import { readFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { encodeMessage, decodeMessage, MessageFramer } from '../../../src/ofc/openflow/index.js';
import { SwitchRefusedError } from '../../../src/ofc/switch/session.js';
import { dumpFlows, startOfcLab, waitUntil } from './ofc-lab.js';
import type { OfcLab } from './ofc-lab.js';

const COOKIE = 0x56494f4c00ff0000n;

describe('OFC switch sessions with a real ovs-vswitchd', () => {
  let lab: OfcLab;

  beforeAll(async () => {
    lab = await startOfcLab('ofcs', { echoIntervalMs: 500, echoTimeoutMs: 2_000 });
    await lab.addBridge('br0');
  });

  async function controllerConnected(): Promise<string> {
    return lab.ovs.vsctl(['--bare', '--columns=is_connected', 'list', 'Controller']);
  }

  afterAll(async () => {
    await lab?.stop();
  });

  it('learns the bridge name and datapath id in the handshake', async () => {
    const dpid = (await lab.ovs.vsctl(['get', 'Bridge', 'br0', 'datapath_id'])).replaceAll('"', '');
    expect(lab.ofc.registry.bridges()).toEqual([{ name: 'br0', datapathId: dpid, connected: true }]);
    // ovs-vswitchd refreshes the Controller row's status every few seconds.
    await waitUntil(
      'OVS to report the controller connected',
      async () => (await controllerConnected()) === 'true',
    );
  });

  it('confirms a batch of flow-mods with a barrier; ovs-ofctl sees them', async () => {
    const bridge = lab.ofc.registry.bridge('br0')!;
    await bridge.apply([
      {
        op: 'add',
        rule: {
          table: 5,
          priority: 100,
          cookie: COOKIE | 1n,
          match: { ethDst: '02:00:00:00:00:01', regs: { 3: 7 } },
          actions: [{ kind: 'output', port: 'normal' }],
        },
      },
      {
        op: 'add',
        rule: { table: 5, priority: 90, cookie: COOKIE | 2n, match: {}, actions: [], gotoTable: 6 },
      },
    ]);
    const flows = (await dumpFlows(lab.ovs, 'br0')).filter((f) => f.includes('table=5'));
    expect(flows).toHaveLength(2);
    expect(flows.join('\n')).toMatch(
      /cookie=0x56494f4c00ff0001, table=5, priority=100,reg3=0x7,dl_dst=02:00:00:00:00:01 actions=NORMAL/,
    );
    expect(flows.join('\n')).toMatch(/table=5, priority=90 actions=goto_table:6/);
    await bridge.apply([{ op: 'deleteByCookie', cookie: COOKIE, mask: 0xffffffffffff0000n }]);
    expect((await dumpFlows(lab.ovs, 'br0')).filter((f) => f.includes('table=5'))).toEqual([]);
  });

  it('rejects a batch when the switch refuses one flow-mod, with the decoded error', async () => {
    const bridge = lab.ofc.registry.bridge('br0')!;
    // goto_table must go forward; OVS refuses going back from table 3 to 1.
    const refused = bridge.apply([
      {
        op: 'add',
        rule: { table: 3, priority: 1, cookie: COOKIE | 3n, match: {}, actions: [], gotoTable: 1 },
      },
    ]);
    await expect(refused).rejects.toBeInstanceOf(SwitchRefusedError);
    await expect(refused).rejects.toThrow(/OFPET_BAD_INSTRUCTION/);
    // The session survives a refusal.
    await bridge.apply([]);
  });

  it('answers the switch’s echo probes and keeps probing it', async () => {
    const before = lab.ofc.registry.bridge('br0');
    await lab.ovs.vsctl(['set', 'Controller', 'br0', 'inactivity_probe=1000']);
    // OVS drops a controller that does not answer within two probe intervals;
    // our side probes every 500 ms and would close a switch silent for 2 s.
    await sleep(5_000);
    expect(lab.ofc.registry.bridge('br0')).toBe(before);
    expect(await controllerConnected()).toBe('true');
    const log = await readFile(join(lab.ovs.runDir, 'ovs-vswitchd.log'), 'utf8');
    expect(log).not.toMatch(/no response to inactivity probe/);
  });

  it('closes only the connection of a peer that sends malformed bytes', async () => {
    const socketPath = lab.controller.slice('unix:'.length);
    const socket = createConnection(socketPath);
    const framer = new MessageFramer();
    const received: string[] = [];
    socket.on('data', (chunk: Buffer) =>
      received.push(...framer.push(chunk).map((m) => decodeMessage(m).type)),
    );
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(encodeMessage({ type: 'hello', xid: 1, versions: [4] }));
    await waitUntil('the OFC to ask for features', () => received.includes('features-request'));
    // A features reply whose length field claims fewer bytes than its fixed part.
    const bogus = Buffer.from('0406000c00000002deadbeef', 'hex');
    socket.write(bogus);
    await closed;
    // The real switch is still connected and still works.
    expect(lab.ofc.registry.bridge('br0')).toBeDefined();
    await lab.ofc.registry.bridge('br0')!.apply([]);
    const metrics = await lab.ofc.metrics.registry.getSingleMetricAsString(
      'violin_ofc_switch_connections_closed_total',
    );
    expect(metrics).toMatch(/reason="malformed"} 1/);
  });

  it('closes a peer that goes silent after the handshake (echo timeout)', async () => {
    const socket = createConnection(lab.controller.slice('unix:'.length));
    const framer = new MessageFramer();
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of framer.push(chunk)) {
        const message = decodeMessage(bytes);
        // Complete the handshake as a switch would, then never answer again.
        if (message.type === 'features-request') {
          socket.write(
            encodeMessage({
              type: 'features-reply',
              xid: message.xid,
              datapathId: 0xabcn,
              nBuffers: 0,
              nTables: 254,
              auxiliaryId: 0,
              capabilities: 0,
            }),
          );
        }
        if (message.type === 'multipart-request') {
          socket.write(
            encodeMessage({
              type: 'multipart-reply',
              xid: message.xid,
              flags: 0,
              body: { kind: 'port-desc', ports: [] },
            }),
          );
        }
      }
    });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(encodeMessage({ type: 'hello', xid: 1, versions: [4] }));
    await waitUntil('the silent switch to be known', () =>
      lab.ofc.registry.bridges().some((b) => b.name === 'dp-0000000000000abc'),
    );
    await closed;
    expect(lab.ofc.registry.bridges().find((b) => b.name === 'dp-0000000000000abc')?.connected).toBe(false);
    const metrics = await lab.ofc.metrics.registry.getSingleMetricAsString(
      'violin_ofc_switch_connections_closed_total',
    );
    expect(metrics).toMatch(/reason="echo_timeout"} 1/);
  });
});
