// TLS end to end with the lab's PKI (src/devenv/pki.ts) and a real Open
// vSwitch: ovs-vswitchd reaches the OFC's ssl: listener with a certificate
// from the lab CA and is served; the same switch configured with a plain tcp:
// target to that port, or with a certificate from another CA (while still
// trusting the OFC's), is turned away and never becomes a bridge of the OFC.
// OVSDB: ovsdb-server's pssl: remote refuses a plain TCP client.
// (test/integration/ofc/tls.test.ts covers a peer without a certificate;
// test/integration/ovsdb/tls.test.ts covers OVSDB with a foreign CA.)
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createCertificateAuthority } from '../../../src/devenv/pki.js';
import type { CertificateAuthority, CertificateFiles } from '../../../src/devenv/pki.js';
import { startOfc } from '../../../src/ofc/ofc.js';
import type { RunningOfc } from '../../../src/ofc/ofc.js';
import { OvsdbClient, OvsdbConnectionError } from '../../../src/ovsdb/index.js';
import { OVSDB_SSL_PORT, startOvs } from '../../support/ovs.js';
import type { OvsInstance } from '../../support/ovs.js';
import { requireTool } from '../../support/require-tool.js';
import { dumpFlows } from '../ofc/ofc-lab.js';

/**
 * Waits until OVS reports that its connection to `bridge`'s controller failed
 * (the Controller row's status:last_error), and returns that error: the
 * attempt was made and refused, so a missing bridge on the OFC side is a
 * refusal, not slowness.
 */
async function controllerError(ovs: OvsInstance, bridge: string): Promise<string> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const controller = (await ovs.vsctl(['get', 'Bridge', bridge, 'controller'])).replace(/[[\]\s]/g, '');
    const status = controller ? await ovs.vsctl(['get', 'Controller', controller, 'status']) : '';
    const lastError = /last_error="?([^",}]+)"?/.exec(status);
    if (lastError) return lastError[1] as string;
    await sleep(100);
  }
  throw new Error(`ovs-vswitchd never reported a failed controller connection for ${bridge}`);
}

describe('TLS with the lab PKI and a real Open vSwitch', () => {
  let dir: string;
  let labCa: CertificateAuthority;
  let switchCert: CertificateFiles;
  let rogueSwitchCert: CertificateFiles;
  let ovs: OvsInstance;
  let ofc: RunningOfc;

  beforeAll(async () => {
    requireTool('openssl', 'Debian package openssl');
    dir = await mkdtemp(join(tmpdir(), 'violin-tls-'));
    labCa = await createCertificateAuthority(join(dir, 'lab'), 'violin-lab-ca', { days: 2 });
    const rogueCa = await createCertificateAuthority(join(dir, 'rogue'), 'rogue-ca', { days: 2 });
    switchCert = await labCa.issue('switch');
    rogueSwitchCert = await rogueCa.issue('switch');
    const ovsdbCert = await labCa.issue('ovsdb', { dnsNames: ['ovsdb.violin.test'] });
    ovs = await startOvs({
      name: 'reltls',
      rootLink: true,
      tls: { privateKey: ovsdbCert.keyPath, certificate: ovsdbCert.certPath, caCert: labCa.certPath },
    });
    const ofcCert = await labCa.issue('ofc', { ipAddresses: [ovs.rootLink!.rootAddress] });
    ofc = await startOfc({
      listen: `ssl:${ovs.rootLink!.rootAddress}:0`,
      control: '127.0.0.1:0',
      tls: await labCa.material(ofcCert),
      logger: pino({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'silent' }),
    });
  });

  afterAll(async () => {
    await ofc?.stop('test finished');
    await ovs?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // Order matters: ovs-vswitchd has one SSL configuration, so the foreign
  // certificate is tried first, then the lab's.
  it('refuses a switch whose certificate comes from another CA, though the switch trusts the OFC', async () => {
    await ovs.vsctl(['set-ssl', rogueSwitchCert.keyPath, rogueSwitchCert.certPath, labCa.certPath]);
    await ovs.addBridge('brrogue', {
      controller: ofc.switchTarget,
      failMode: 'secure',
      protocols: ['OpenFlow13'],
    });
    const error = await controllerError(ovs, 'brrogue');
    expect(error.length).toBeGreaterThan(0);
    expect(ofc.registry.bridge('brrogue')).toBeUndefined();
    // The switch verified the OFC's certificate and was then dropped (TLS 1.3 checks the client's
    // certificate after the client finished): the refusal is the OFC's, not the switch's.
    const switchLog = await readFile(join(ovs.runDir, 'ovs-vswitchd.log'), 'utf8');
    expect(switchLog).toMatch(/brrogue<->ssl:.*connection dropped/);
    expect(switchLog).not.toMatch(/certificate verify failed/i);
    await ovs.vsctl(['del-br', 'brrogue']);
  });

  it('serves a switch with a lab certificate over ssl: and installs its rules', async () => {
    await ovs.vsctl(['set-ssl', switchCert.keyPath, switchCert.certPath, labCa.certPath]);
    await ovs.addBridge('br0', {
      controller: ofc.switchTarget,
      failMode: 'secure',
      protocols: ['OpenFlow13'],
    });
    const bridge = await ofc.registry.waitForBridge('br0', 30_000);
    await bridge.apply([
      {
        op: 'add',
        rule: {
          table: 0,
          priority: 9,
          cookie: 0x9n,
          match: {},
          actions: [{ kind: 'output', port: 'normal' }],
        },
      },
    ]);
    expect(await dumpFlows(ovs, 'br0')).toContain('cookie=0x9, priority=9 actions=NORMAL');
  });

  it('refuses plain TCP on the TLS port and keeps serving the TLS switch', async () => {
    const plainTarget = ofc.switchTarget.replace(/^ssl:/, 'tcp:');
    await ovs.addBridge('brplain', {
      controller: plainTarget,
      failMode: 'secure',
      protocols: ['OpenFlow13'],
    });
    const error = await controllerError(ovs, 'brplain');
    expect(error.length).toBeGreaterThan(0);
    expect(ofc.registry.bridge('brplain')).toBeUndefined();
    expect(ofc.registry.bridges()).toEqual([expect.objectContaining({ name: 'br0', connected: true })]);
    await ofc.registry.bridge('br0')!.apply([]);
  });

  it('OVSDB: ovsdb-server with a pssl: remote refuses a plain TCP client on that port', async () => {
    const plain = await OvsdbClient.connect(`tcp:${ovs.rootLink!.nsAddress}:${OVSDB_SSL_PORT}`);
    await expect(plain.listDbs()).rejects.toBeInstanceOf(OvsdbConnectionError);
    // The same port speaks to a client with a lab certificate.
    const client = await OvsdbClient.connect(`ssl:${ovs.rootLink!.nsAddress}:${OVSDB_SSL_PORT}`, {
      tls: { ...(await labCa.material(switchCert)), servername: 'ovsdb.violin.test' },
    });
    try {
      expect(await client.listDbs()).toContain('Open_vSwitch');
    } finally {
      client.close();
    }
  });
});
