import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run } from '../../support/netns.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsHost, OvsInstance } from '../../support/ovs.js';
import { requireTool } from '../../support/require-tool.js';

/** Resolves with the first bytes a switch sends to a controller listening on `server`. */
function firstMessage(server: Server): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('connection', (socket: Socket) => {
      socket.once('data', (data: Buffer) => {
        socket.destroy();
        resolve(data);
      });
    });
  });
}

const OFPT_HELLO = 0;

describe('OVS fixture', () => {
  let ovs: OvsInstance;
  let hostA: OvsHost;
  let hostB: OvsHost;

  beforeAll(async () => {
    requireTool('socat', 'Debian package socat');
    requireTool('busybox', 'Debian package busybox-static');
    ovs = await startOvs({ name: 'fixture', rootLink: true });
    await ovs.addBridge('br0');
    hostA = await ovs.addHost('ha', '10.77.0.1', 'br0');
    hostB = await ovs.addHost('hb', '10.77.0.2', 'br0', { owner: { podUid: 'pod-uid-b', iface: 'net1' } });
  });

  afterAll(async () => {
    await ovs?.stop();
  });

  it('creates a netdev bridge whose ports carry the owner in external_ids', async () => {
    expect(await ovs.vsctl(['get', 'Bridge', 'br0', 'datapath_type'])).toBe('netdev');
    expect(await ovs.vsctl(['get', 'Port', 'ha', 'external_ids:violin-vm'])).toBe('ha');
    expect(await ovs.vsctl(['get', 'Port', 'hb', 'external_ids:contPodUid'])).toBe('pod-uid-b');
    expect(await ovs.vsctl(['get', 'Port', 'hb', 'external_ids:contIface'])).toBe('net1');
    expect(await ovs.vsctl(['get', 'Interface', 'ha', 'external_ids:attached-mac'])).toBe(`"${hostA.mac}"`);
    const { stdout: macInHost } = await hostA.exec(['cat', `/sys/class/net/${hostA.iface}/address`]);
    expect(macInHost.trim()).toBe(hostA.mac);
    expect(hostA.ofport).not.toBe(hostB.ofport);
    const flows = await ovs.ofctl(['-O', 'OpenFlow13', 'dump-flows', 'br0']);
    expect(flows).toContain('actions=NORMAL');
  });

  it('forwards ICMP between two hosts with the NORMAL flow', async () => {
    const { stdout } = await hostA.exec(['busybox', 'ping', '-c', '3', '-i', '0.2', '-W', '5', hostB.ip]);
    expect(stdout).toMatch(/3 packets received/);
  });

  it('carries TCP between two hosts byte for byte (checksums survive the userspace datapath)', async () => {
    const payload = randomBytes(1024 * 1024);
    const payloadFile = join(ovs.runDir, 'payload.bin');
    await writeFile(payloadFile, payload);
    const server = hostB.spawn(['socat', '-u', `TCP-LISTEN:5000,bind=${hostB.ip}`, 'STDOUT']);
    const received: Buffer[] = [];
    server.stdout?.on('data', (chunk: Buffer) => received.push(chunk));
    const serverExited = once(server, 'exit');
    try {
      let sent = false;
      for (let attempt = 0; attempt < 50 && !sent; attempt++) {
        try {
          await hostA.exec(['socat', '-u', `OPEN:${payloadFile}`, `TCP:${hostB.ip}:5000`]);
          sent = true;
        } catch {
          await sleep(100); // the listener is not up yet
        }
      }
      expect(sent, 'socat never connected').toBe(true);
      await serverExited;
      expect(Buffer.concat(received).equals(payload)).toBe(true);
    } finally {
      server.kill('SIGTERM');
    }
  });

  it('lets ovs-vswitchd in its namespace connect to a controller on a unix socket of the test process', async () => {
    const path = join(ovs.runDir, 'controller.sock');
    const server = createServer();
    server.listen(path);
    await once(server, 'listening');
    try {
      const hello = firstMessage(server);
      await ovs.addBridge('brunix', { controller: `unix:${path}`, protocols: ['OpenFlow13'] });
      const data = await hello;
      expect(data[0]).toBe(0x04); // OpenFlow 1.3
      expect(data[1]).toBe(OFPT_HELLO);
    } finally {
      server.close();
    }
  });

  it('lets ovs-vswitchd connect to a TCP controller over the root link', async () => {
    const link = ovs.rootLink;
    if (!link) throw new Error('startOvs({ rootLink: true }) returned no root link');
    const server = createServer();
    server.listen(0, link.rootAddress);
    await once(server, 'listening');
    try {
      const hello = firstMessage(server);
      const { port } = server.address() as AddressInfo;
      await ovs.addBridge('brtcp', {
        controller: `tcp:${link.rootAddress}:${port}`,
        protocols: ['OpenFlow13'],
      });
      const data = await hello;
      expect(data[0]).toBe(0x04);
      expect(data[1]).toBe(OFPT_HELLO);
    } finally {
      server.close();
    }
  });
});

describe('OVS fixture cleanup', () => {
  it('stops both daemons by PID and deletes every namespace and veth it created', async () => {
    const ovs = await startOvs({ name: 'cleanup', rootLink: true });
    await ovs.addBridge('br0');
    const host = await ovs.addHost('h1', '10.78.0.1', 'br0');
    const pids = await Promise.all(
      ['ovsdb-server', 'ovs-vswitchd'].map(async (daemon) =>
        Number(await readFile(join(ovs.runDir, `${daemon}.pid`), 'utf8')),
      ),
    );
    await ovs.stop();
    for (const pid of pids) expect(() => process.kill(pid, 0), `process ${pid} still runs`).toThrow();
    const { stdout: namespaces } = await run('ip', ['netns', 'list']);
    expect(namespaces).not.toContain(ovs.netns.name);
    expect(namespaces).not.toContain(host.netns.name);
    const { stdout: links } = await run('ip', ['-o', 'link', 'show']);
    expect(links).not.toContain(ovs.rootLink?.rootIface);
  });
});
