// OpenFlow over TLS: ovs-vswitchd connects to the OFC's `ssl:` listener with
// a certificate signed by the test CA and is served like any other switch;
// a peer without a certificate is turned away without touching the others.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startOfc } from '../../../src/ofc/ofc.js';
import type { RunningOfc } from '../../../src/ofc/ofc.js';
import { run } from '../../support/netns.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsInstance } from '../../support/ovs.js';
import { requireTool } from '../../support/require-tool.js';
import { dumpFlows } from './ofc-lab.js';

async function issueCertificate(dir: string, name: string): Promise<void> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  await run('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/CN=${name}`,
  ]);
  await run('openssl', [
    ...['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key')],
    ...['-CAcreateserial', '-out', join(dir, `${name}.crt`), '-days', '1'],
  ]);
}

describe('OpenFlow over TLS with a real ovs-vswitchd', () => {
  let ovs: OvsInstance;
  let ofc: RunningOfc;

  beforeAll(async () => {
    requireTool('openssl', 'Debian package openssl');
    ovs = await startOvs({ name: 'ofct', rootLink: true });
    const dir = ovs.runDir;
    await run('openssl', [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca.key')],
      ...['-out', join(dir, 'ca.crt'), '-days', '1', '-subj', '/CN=violin-test-ca'],
    ]);
    await issueCertificate(dir, 'ofc');
    await issueCertificate(dir, 'switch');
    ofc = await startOfc({
      listen: `ssl:${ovs.rootLink!.rootAddress}:0`,
      control: '127.0.0.1:0',
      tls: {
        key: await readFile(join(dir, 'ofc.key')),
        cert: await readFile(join(dir, 'ofc.crt')),
        ca: await readFile(join(dir, 'ca.crt')),
      },
      logger: pino({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'silent' }),
    });
    await ovs.vsctl(['set-ssl', join(dir, 'switch.key'), join(dir, 'switch.crt'), join(dir, 'ca.crt')]);
    await ovs.addBridge('br0', {
      controller: ofc.switchTarget,
      failMode: 'secure',
      protocols: ['OpenFlow13'],
    });
  });

  afterAll(async () => {
    await ofc?.stop('test finished');
    await ovs?.stop();
  });

  it('serves a switch that connects with ssl: and installs rules over it', async () => {
    expect(ofc.switchTarget).toMatch(/^ssl:169\.254\.\d+\.\d+:\d+$/);
    const bridge = await ofc.registry.waitForBridge('br0', 30_000);
    await bridge.apply([
      {
        op: 'add',
        rule: {
          table: 0,
          priority: 7,
          cookie: 0x7n,
          match: {},
          actions: [{ kind: 'output', port: 'normal' }],
        },
      },
    ]);
    expect(await dumpFlows(ovs, 'br0')).toContain('cookie=0x7, priority=7 actions=NORMAL');
  });

  it('turns away a peer without a client certificate and keeps the others', async () => {
    const [host, port] = ofc.switchTarget.slice('ssl:'.length).split(':');
    const refused = await new Promise<string>((resolve) => {
      const socket = connect({ host, port: Number(port), rejectUnauthorized: false });
      socket.on('error', (error) => resolve(`error: ${error.message}`));
      socket.on('close', () => resolve('closed'));
      socket.on('data', () => resolve('got data'));
    });
    expect(refused).not.toBe('got data');
    expect(ofc.registry.bridges()).toEqual([expect.objectContaining({ name: 'br0', connected: true })]);
    await ofc.registry.bridge('br0')!.apply([]);
  });
});
