// The codec against a real Open vSwitch: the handshake, flow-mods with every
// match field, instruction and action, barrier, the multipart requests, role,
// config, packet-out → packet-in, the switch's own error messages, and flows
// re-installed from their ovs-ofctl text. What the switch reports (ovs-ofctl
// dump-flows, and its flow-stats replies decoded by the codec) must be what we
// meant.
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ControllerRole,
  ErrorType,
  FlowModFlags,
  FlowRemovedReason,
  OFP_NO_BUFFER,
  OFP_VERSION,
  OfGroup,
  OfPort,
  OfTable,
  PacketInReason,
  PortReason,
  describeError,
  formatActions,
  formatFlow,
  formatMatch,
  parseActions,
  parseMatch,
} from '../../../src/ofc/openflow/index.js';
import type { FlowModMessage, MultipartReplyMessage, OfMessage } from '../../../src/ofc/openflow/index.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsInstance } from '../../support/ovs.js';
import { ControllerSocket } from './controller-socket.js';
import { addFlowMods } from './flows.js';

/** The message, narrowed to `type` (which the test asserts). */
function reply<T extends OfMessage['type']>(msg: OfMessage, type: T): OfMessage & { type: T } {
  expect(msg.type).toBe(type);
  return msg as OfMessage & { type: T };
}

/** A flow-mod that deletes every flow in every table. */
function deleteAll(): Omit<FlowModMessage, 'xid'> {
  return {
    type: 'flow-mod',
    command: 'delete',
    cookie: 0n,
    cookieMask: 0n,
    tableId: OfTable.ALL,
    idleTimeout: 0,
    hardTimeout: 0,
    priority: 0,
    flags: 0,
    match: {},
    instructions: [],
  };
}

/** Flow lines of `ovs-ofctl dump-flows`, without stats, sorted for comparison. */
async function dumpFlows(ovs: OvsInstance): Promise<string[]> {
  const out = await ovs.ofctl(['-O', 'OpenFlow13', '--no-names', '--no-stats', 'dump-flows', 'br0']);
  return out
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .sort();
}

describe('the OpenFlow codec against a real ovs-vswitchd', () => {
  let ovs: OvsInstance;
  let server: Server;
  let of: ControllerSocket;
  let flows: FlowModMessage[];

  beforeAll(async () => {
    ovs = await startOvs({ name: 'ofcodec' });
    // ovs-vswitchd only connects to unix sockets inside its own run directory.
    const socketPath = join(ovs.runDir, 'ofc.sock');
    server = createServer();
    server.listen(socketPath);
    await once(server, 'listening');
    const connected = once(server, 'connection') as Promise<[Socket]>;
    // fail_mode secure: OVS adds no flows of its own, so the table is exactly ours.
    await ovs.addBridge('br0', {
      controller: `unix:${socketPath}`,
      protocols: ['OpenFlow13'],
      failMode: 'secure',
    });
    const [socket] = await connected;
    of = new ControllerSocket(socket);
  });

  /** The switch's flow-stats reply: every flow, or those of one table whose cookie matches under a mask. */
  async function flowStats(
    filter: { tableId: number; cookie: bigint; cookieMask: bigint } = {
      tableId: OfTable.ALL,
      cookie: 0n,
      cookieMask: 0n,
    },
  ): Promise<MultipartReplyMessage> {
    return reply(
      await of.request({
        type: 'multipart-request',
        xid: of.xid(),
        flags: 0,
        body: { kind: 'flow', outPort: OfPort.ANY, outGroup: OfGroup.ANY, match: {}, ...filter },
      }),
      'multipart-reply',
    );
  }

  afterAll(async () => {
    of?.close();
    server?.close();
    await ovs?.stop();
  });

  it('negotiates OpenFlow 1.3 and reads the features', async () => {
    of.send({ type: 'hello', xid: of.xid(), versions: [OFP_VERSION] });
    const hello = reply(await of.waitFor((m) => m.type === 'hello', 'hello'), 'hello');
    expect(hello.versions).toContain(OFP_VERSION);
    const features = reply(await of.request({ type: 'features-request', xid: of.xid() }), 'features-reply');
    const dpid = await ovs.vsctl(['get', 'Bridge', 'br0', 'datapath_id']);
    expect(features.datapathId).toBe(BigInt(`0x${dpid.replaceAll('"', '')}`));
    expect(features.nTables).toBeGreaterThan(4);
  });

  it('answers echo with our data and keeps the config we set', async () => {
    const data = Buffer.from('violin echo');
    const echo = reply(await of.request({ type: 'echo-request', xid: of.xid(), data }), 'echo-reply');
    expect(echo.data).toEqual(data);
    of.send({ type: 'set-config', xid: of.xid(), flags: 0, missSendLen: 200 });
    const config = reply(await of.request({ type: 'get-config-request', xid: of.xid() }), 'get-config-reply');
    expect(config).toMatchObject({ flags: 0, missSendLen: 200 });
  });

  it('installs every flow as sent: ovs-ofctl dump-flows shows exactly what formatFlow predicts', async () => {
    flows = addFlowMods(() => of.xid());
    for (const flow of flows) of.send(flow);
    await of.request({ type: 'barrier-request', xid: of.xid() });
    expect(of.errors()).toEqual([]);
    expect(await dumpFlows(ovs)).toEqual(flows.map((f) => formatFlow(f)).sort());
  });

  it('decodes the switch’s flow-stats reply to the flows we sent', async () => {
    const stats = await flowStats();
    if (stats.body.kind !== 'flow') throw new Error(`expected flow stats, got ${stats.body.kind}`);
    expect(stats.body.flows.map((f) => formatFlow(f)).sort()).toEqual(flows.map((f) => formatFlow(f)).sort());
    const timed = stats.body.flows.find((f) => f.cookie === 0xaan);
    expect(timed).toMatchObject({ idleTimeout: 600, hardTimeout: 1200, tableId: 4, priority: 300 });

    // The request's filters reach the switch: table 1 and a cookie under a mask.
    const filtered = await flowStats({ tableId: 1, cookie: 0x30n, cookieMask: 0xf0n });
    if (filtered.body.kind !== 'flow') throw new Error('expected flow stats');
    expect(filtered.body.flows.map((f) => f.cookie)).toEqual([0x33n]);
  });

  it('modifies and deletes flows with the strict and non-strict commands', async () => {
    const byCookie = (cookie: bigint): FlowModMessage => {
      const flow = flows.find((f) => f.cookie === cookie);
      if (!flow) throw new Error(`no flow with cookie ${cookie}`);
      return flow;
    };
    const modified: FlowModMessage = {
      ...byCookie(0x77n),
      xid: of.xid(),
      command: 'modify-strict',
      instructions: [{ type: 'apply-actions', actions: [{ type: 'output', port: 2 }] }],
    };
    of.send(modified);
    of.send({ ...byCookie(0x88n), xid: of.xid(), command: 'delete-strict', instructions: [] });
    // Non-strict delete by cookie: every flow whose cookie is 0xaa, in any table.
    of.send({
      ...byCookie(0xaan),
      xid: of.xid(),
      command: 'delete',
      tableId: OfTable.ALL,
      cookieMask: 0xffffffffffffffffn,
      match: {},
      instructions: [],
    });
    // Non-strict modify: every flow of table 1 whose match includes ip, i.e. cookie 0x22 only.
    of.send({
      ...byCookie(0x22n),
      xid: of.xid(),
      command: 'modify',
      match: { ethType: 0x0800 },
      instructions: [{ type: 'goto-table', tableId: 3 }],
    });
    await of.request({ type: 'barrier-request', xid: of.xid() });
    expect(of.errors()).toEqual([]);
    const expected = flows
      .filter((f) => f.cookie !== 0x88n && f.cookie !== 0xaan)
      .map((f) => (f.cookie === 0x77n ? modified : f))
      .map((f) =>
        f.cookie === 0x22n ? { ...f, instructions: [{ type: 'goto-table' as const, tableId: 3 }] } : f,
      );
    expect(await dumpFlows(ovs)).toEqual(expected.map((f) => formatFlow(f)).sort());
  });

  it('re-installs flows from their ovs-ofctl text (a bundle’s saved flows) exactly as they were', async () => {
    const before = await dumpFlows(ovs);
    const stats = await flowStats();
    if (stats.body.kind !== 'flow') throw new Error('expected flow stats');
    const saved = stats.body.flows.map((f) => ({
      ...f,
      match: formatMatch(f.match),
      actions: formatActions(f.instructions),
    }));
    of.send({ ...deleteAll(), xid: of.xid() });
    await of.request({ type: 'barrier-request', xid: of.xid() });
    expect(await dumpFlows(ovs)).toEqual([]);
    for (const flow of saved) {
      of.send({
        type: 'flow-mod',
        xid: of.xid(),
        command: 'add',
        cookie: flow.cookie,
        cookieMask: 0n,
        tableId: flow.tableId,
        idleTimeout: flow.idleTimeout,
        hardTimeout: flow.hardTimeout,
        priority: flow.priority,
        flags: flow.flags,
        match: parseMatch(flow.match),
        instructions: parseActions(flow.actions),
      });
    }
    await of.request({ type: 'barrier-request', xid: of.xid() });
    expect(of.errors()).toEqual([]);
    expect(await dumpFlows(ovs)).toEqual(before);
  });

  it('decodes the switch’s error for a flow-mod it refuses', async () => {
    const bad: FlowModMessage = {
      ...addFlowMods(() => of.xid())[0]!,
      instructions: [{ type: 'apply-actions', actions: [{ type: 'group', groupId: 42 }] }],
    };
    of.send(bad);
    const error = reply(await of.waitFor((m) => m.xid === bad.xid, 'error for the bad flow-mod'), 'error');
    expect(error.errorType).toBe(ErrorType.BAD_ACTION);
    expect(describeError(error.errorType, error.code)).toBe('BAD_ACTION/BAD_OUT_GROUP');
    // The error carries the start of our request, which decodes back to it.
    expect(error.data.readUInt32BE(4)).toBe(bad.xid);
  });

  it('reads desc, port-desc and port-stats', async () => {
    const desc = reply(
      await of.request({ type: 'multipart-request', xid: of.xid(), flags: 0, body: { kind: 'desc' } }),
      'multipart-reply',
    );
    expect(desc.body).toMatchObject({ kind: 'desc', mfrDesc: 'Nicira, Inc.', hwDesc: 'Open vSwitch' });

    const ports = reply(
      await of.request({ type: 'multipart-request', xid: of.xid(), flags: 0, body: { kind: 'port-desc' } }),
      'multipart-reply',
    );
    if (ports.body.kind !== 'port-desc') throw new Error('expected port-desc');
    const local = ports.body.ports.find((p) => p.portNo === OfPort.LOCAL);
    expect(local?.name).toBe('br0');
    const mac = await ovs.vsctl(['get', 'Interface', 'br0', 'mac_in_use']);
    expect(local?.hwAddr).toBe(mac.replaceAll('"', ''));

    const portStats = reply(
      await of.request({
        type: 'multipart-request',
        xid: of.xid(),
        flags: 0,
        body: { kind: 'port-stats', portNo: OfPort.ANY },
      }),
      'multipart-reply',
    );
    if (portStats.body.kind !== 'port-stats') throw new Error('expected port-stats');
    expect(portStats.body.ports.map((p) => p.portNo)).toContain(OfPort.LOCAL);
  });

  it('decodes the flow-removed the switch sends when a SEND_FLOW_REM flow times out', async () => {
    const expiring: FlowModMessage = {
      type: 'flow-mod',
      xid: of.xid(),
      command: 'add',
      cookie: 0xbeefn,
      cookieMask: 0n,
      tableId: 5,
      idleTimeout: 0,
      hardTimeout: 1,
      priority: 77,
      flags: FlowModFlags.SEND_FLOW_REM,
      match: { ethType: 0x0800, ipv4Src: '10.9.0.0', ipv4SrcMask: '255.255.0.0', regs: { 6: { value: 6 } } },
      instructions: [],
    };
    of.send(expiring);
    const removed = reply(
      await of.waitFor((m) => m.type === 'flow-removed' && m.cookie === 0xbeefn, 'flow-removed'),
      'flow-removed',
    );
    expect(removed).toMatchObject({
      reason: FlowRemovedReason.HARD_TIMEOUT,
      tableId: 5,
      priority: 77,
      hardTimeout: 1,
      packetCount: 0n,
      byteCount: 0n,
    });
    expect(formatMatch(removed.match)).toBe(formatMatch(expiring.match));
  });

  it('decodes the port-status the switch sends when a port is added', async () => {
    await ovs.vsctl(['add-port', 'br0', 'ofc-int0', '--', 'set', 'Interface', 'ofc-int0', 'type=internal']);
    const status = reply(
      await of.waitFor(
        (m) => m.type === 'port-status' && m.port.name === 'ofc-int0',
        'port-status for ofc-int0',
      ),
      'port-status',
    );
    expect(status.reason).toBe(PortReason.ADD);
    const ofport = Number(await ovs.vsctl(['get', 'Interface', 'ofc-int0', 'ofport']));
    expect(status.port.portNo).toBe(ofport);
  });

  it('takes the master role with a generation id', async () => {
    const role = reply(
      await of.request({
        type: 'role-request',
        xid: of.xid(),
        role: ControllerRole.MASTER,
        generationId: 7n,
      }),
      'role-reply',
    );
    expect(role).toMatchObject({ role: ControllerRole.MASTER, generationId: 7n });
  });

  it('sends a packet-out whose output to CONTROLLER comes back as a packet-in', async () => {
    const frame = Buffer.concat([
      Buffer.from('ffffffffffff020000000002', 'hex'),
      Buffer.from('88b5', 'hex'), // IEEE local experimental ethertype: nothing else reacts to it
      Buffer.from('violin packet-out round trip'.padEnd(46, '.')),
    ]);
    const out = {
      type: 'packet-out' as const,
      xid: of.xid(),
      bufferId: OFP_NO_BUFFER,
      inPort: OfPort.CONTROLLER,
      actions: [
        { type: 'set-field' as const, field: { regs: { 5: { value: 0x55 } } } },
        { type: 'output' as const, port: OfPort.CONTROLLER, maxLen: 0xffff },
      ],
      data: frame,
    };
    of.send(out);
    const packetIn = reply(
      await of.waitFor((m) => m.type === 'packet-in' && m.data.equals(frame), 'packet-in of our frame'),
      'packet-in',
    );
    expect(packetIn).toMatchObject({
      reason: PacketInReason.ACTION,
      bufferId: OFP_NO_BUFFER,
      totalLen: frame.length,
    });
    // OVS reports the packet's metadata in the match: the in_port and the register we set.
    expect(packetIn.match.inPort).toBe(OfPort.CONTROLLER);
    expect(packetIn.match.regs?.[5]).toEqual({ value: 0x55 });
    expect(of.errors([out.xid])).toEqual([]);
  });
});
