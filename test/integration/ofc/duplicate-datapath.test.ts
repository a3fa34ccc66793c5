// A second switch connection claiming a datapath that is already connected:
// refused while the first session answers (a forged switch must not take over
// a bridge and the frames held for it), accepted in place of a dead one (a
// switch reconnecting after its old connection died half-open). Two real
// connections each time: ovs-vswitchd's own and a scripted switch, or two
// scripted switches over the OFC's real socket.
import { createConnection, type Socket } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeMessage, encodeMessage, MessageFramer, OfPort } from '../../../src/ofc/openflow/index.js';
import type { PortDesc } from '../../../src/ofc/openflow/index.js';
import { startOfcLab, waitUntil } from './ofc-lab.js';
import type { OfcLab } from './ofc-lab.js';

/** A switch played by a script: completes the handshake as `bridge`/`dpid`, answers while `answering`. */
class ScriptedSwitch {
  readonly socket: Socket;
  answering = true;
  readonly closed: Promise<void>;
  private readonly framer = new MessageFramer();

  constructor(path: string, bridge: string, dpid: bigint) {
    this.socket = createConnection(path);
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve()));
    this.socket.on('error', () => undefined);
    this.socket.on('data', (chunk: Buffer) => {
      for (const bytes of this.framer.push(chunk)) {
        if (!this.answering) continue;
        const message = decodeMessage(bytes);
        const xid = message.xid;
        switch (message.type) {
          case 'features-request':
            this.send({
              type: 'features-reply',
              xid,
              datapathId: dpid,
              nBuffers: 0,
              nTables: 254,
              auxiliaryId: 0,
              capabilities: 0,
            });
            break;
          case 'multipart-request':
            this.send({
              type: 'multipart-reply',
              xid,
              flags: 0,
              body: { kind: 'port-desc', ports: [localPort(bridge)] },
            });
            break;
          case 'barrier-request':
            this.send({ type: 'barrier-reply', xid });
            break;
          case 'echo-request':
            this.send({ type: 'echo-reply', xid, data: message.data });
            break;
          default:
        }
      }
    });
    this.socket.once('connect', () => this.send({ type: 'hello', xid: 1, versions: [4] }));
  }

  private send(message: Parameters<typeof encodeMessage>[0]): void {
    if (!this.socket.destroyed) this.socket.write(encodeMessage(message));
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.closed;
  }
}

function localPort(name: string): PortDesc {
  return {
    portNo: OfPort.LOCAL,
    hwAddr: '02:00:00:00:00:99',
    name,
    config: 0,
    state: 0,
    curr: 0,
    advertised: 0,
    supported: 0,
    peer: 0,
    currSpeed: 0,
    maxSpeed: 0,
  };
}

describe('a second connection for a connected datapath', () => {
  let lab: OfcLab;
  let path: string;

  beforeAll(async () => {
    lab = await startOfcLab('ofcdup');
    await lab.addBridge('br0');
    path = lab.controller.slice('unix:'.length);
  });

  afterAll(async () => {
    await lab?.stop();
  });

  async function closedReasons(): Promise<string> {
    return lab.ofc.metrics.registry.getSingleMetricAsString('violin_ofc_switch_connections_closed_total');
  }

  it("is refused while the real switch's session answers: the bridge keeps its session", async () => {
    const real = lab.ofc.registry.bridge('br0')!;
    const dpid = (await lab.ovs.vsctl(['get', 'Bridge', 'br0', 'datapath_id'])).replaceAll('"', '');
    const forged = new ScriptedSwitch(path, 'br0', BigInt(`0x${dpid}`));
    await forged.closed;
    expect(lab.ofc.registry.bridge('br0')).toBe(real);
    await real.apply([]);
    expect(await closedReasons()).toMatch(/reason="duplicate_refused"} 1/);
  });

  it('is refused when it claims the bridge name under another datapath id', async () => {
    const real = lab.ofc.registry.bridge('br0')!;
    const forged = new ScriptedSwitch(path, 'br0', 0xf0f0n);
    await forged.closed;
    expect(lab.ofc.registry.bridge('br0')).toBe(real);
    expect(await closedReasons()).toMatch(/reason="duplicate_refused"} 2/);
  });

  it('replaces a session that stopped answering (the old connection died half-open)', async () => {
    const first = new ScriptedSwitch(path, 'br-scripted', 0x5151n);
    const firstBridge = await lab.ofc.registry.waitForBridge('br-scripted', 15_000);
    // A second live connection is refused, as above...
    const rival = new ScriptedSwitch(path, 'br-scripted', 0x5151n);
    await rival.closed;
    expect(lab.ofc.registry.bridge('br-scripted')).toBe(firstBridge);
    // ...but once the first stops answering, the next one takes its place.
    first.answering = false;
    const second = new ScriptedSwitch(path, 'br-scripted', 0x5151n);
    await first.closed;
    await waitUntil(
      'the reconnected switch to be ready',
      () =>
        lab.ofc.registry.bridge('br-scripted') !== undefined &&
        lab.ofc.registry.bridge('br-scripted') !== firstBridge,
    );
    expect(second.isClosed).toBe(false);
    expect(await closedReasons()).toMatch(/reason="replaced"} 1/);
    second.socket.destroy();
  });
});
