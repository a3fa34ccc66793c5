// The OVSDB client over TLS (ssl: remote) against a real ovsdb-server with a
// pssl listener: mutual authentication works with certificates from one CA,
// and is refused in both directions when a certificate comes from another.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OvsdbClient, OvsdbConnectionError } from '../../../src/ovsdb/index.js';
import { OvsdbServers, ovsdbTls } from '../../../src/reconcilers/environment.js';
import { run } from '../../support/netns.js';
import { OVSDB_SSL_PORT, startOvs } from '../../support/ovs.js';
import type { OvsInstance } from '../../support/ovs.js';
import { requireTool } from '../../support/require-tool.js';

const SERVER_NAME = 'ovsdb.violin.test';

interface Pki {
  dir: string;
  /** Writes a CA, returning the paths of its key and certificate. */
  ca(name: string): Promise<{ key: string; cert: string }>;
  /** Writes a key and a certificate signed by `ca`, with a DNS name SAN when given. */
  leaf(
    name: string,
    ca: { key: string; cert: string },
    dnsName?: string,
  ): Promise<{ key: string; cert: string }>;
}

/** A throwaway PKI made with the openssl CLI (EC P-256 keys: quick to make). */
async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'violin-ovsdb-pki-'));
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  return {
    dir,
    async ca(name) {
      const key = join(dir, `${name}.key`);
      const cert = join(dir, `${name}.pem`);
      await run('openssl', [
        'req',
        '-x509',
        ...newKey,
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
      ]);
      return { key, cert };
    },
    async leaf(name, ca, dnsName) {
      const key = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.pem`);
      const extensions = join(dir, `${name}.ext`);
      await writeFile(
        extensions,
        `basicConstraints=CA:FALSE\n${dnsName ? `subjectAltName=DNS:${dnsName}\n` : ''}`,
      );
      await run('openssl', ['req', ...newKey, '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
      await run('openssl', [
        ...['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial'],
        ...['-out', cert, '-days', '2', '-extfile', extensions],
      ]);
      return { key, cert };
    },
  };
}

describe('OvsdbClient over TLS', () => {
  let pki: Pki;
  let ovs: OvsInstance;
  let remote: string;
  let ca: { key: string; cert: string };
  let otherCa: { key: string; cert: string };

  beforeAll(async () => {
    requireTool('openssl', 'Debian package openssl');
    pki = await makePki();
    ca = await pki.ca('violin-test-ca');
    otherCa = await pki.ca('stranger-ca');
    // The server's certificate names a DNS name, not the fixture's randomly
    // chosen address; the client asks for that name (SNI and identity check),
    // as a client of a real node's ovsdb-server would.
    const server = await pki.leaf('ovsdb-server', ca, SERVER_NAME);
    ovs = await startOvs({
      name: 'tls',
      rootLink: true,
      tls: { privateKey: server.key, certificate: server.cert, caCert: ca.cert },
    });
    remote = `ssl:${ovs.rootLink?.nsAddress}:${OVSDB_SSL_PORT}`;
  });

  afterAll(async () => {
    await ovs?.stop();
    if (pki) await rm(pki.dir, { recursive: true, force: true });
  });

  it('talks to ovsdb-server with certificates from the same CA', async () => {
    const client = await pki.leaf('violin-client', ca);
    const ovsdb = await OvsdbClient.connect(remote, {
      tls: {
        key: await readFile(client.key),
        cert: await readFile(client.cert),
        ca: await readFile(ca.cert),
        servername: SERVER_NAME,
      },
    });
    try {
      expect(await ovsdb.listDbs()).toContain('Open_vSwitch');
    } finally {
      ovsdb.close();
    }
  });

  it('is refused by ovsdb-server when its certificate comes from another CA', async () => {
    const stranger = await pki.leaf('stranger-client', otherCa);
    const attempt = async () => {
      const ovsdb = await OvsdbClient.connect(remote, {
        tls: {
          key: await readFile(stranger.key),
          cert: await readFile(stranger.cert),
          ca: await readFile(ca.cert),
          servername: SERVER_NAME,
        },
      });
      return ovsdb.listDbs();
    };
    await expect(attempt()).rejects.toBeInstanceOf(OvsdbConnectionError);
    await expect(attempt()).rejects.toThrow(/unknown ca/);
  });

  it('refuses a server whose certificate it cannot verify', async () => {
    const client = await pki.leaf('violin-client-2', ca);
    const connecting = OvsdbClient.connect(remote, {
      tls: {
        key: await readFile(client.key),
        cert: await readFile(client.cert),
        ca: await readFile(otherCa.cert),
        servername: SERVER_NAME,
      },
    });
    await expect(connecting).rejects.toThrow(
      /cannot connect to ssl:.*(self.signed|unable to verify|certificate)/i,
    );
  });

  it("is how the operator reaches ssl: remotes, with a kubernetes.io/tls Secret's files (VIOLIN_OVSDB_TLS_DIR)", async () => {
    const client = await pki.leaf('violin-operator', ca);
    // The Secret as the chart mounts it: tls.key, tls.crt and ca.crt in one directory.
    const secret = join(pki.dir, 'ovsdb-tls');
    await mkdir(secret);
    await copyFile(client.key, join(secret, 'tls.key'));
    await copyFile(client.cert, join(secret, 'tls.crt'));
    await copyFile(ca.cert, join(secret, 'ca.crt'));
    const env = { VIOLIN_OVSDB_TLS_DIR: secret, VIOLIN_OVSDB_TLS_SERVER_NAME: SERVER_NAME };
    await ovs.vsctl(['--may-exist', 'add-br', 'br-tls']);
    const servers = new OvsdbServers([remote], ovsdbTls([remote], env));
    // Securing a bridge writes through the remote and waits for ovs-vswitchd: the whole path works.
    await servers.secure('snapshot/tls', ['br-tls']);
    expect(await ovs.vsctl(['get', 'Bridge', 'br-tls', 'fail_mode'])).toBe('secure');
    expect(await servers.release('snapshot/tls')).toEqual(['br-tls']);
  });

  it('refuses to start with an ssl: remote and no client certificate, naming what to set', () => {
    expect(() => ovsdbTls([`tcp:10.0.0.1:6640`, remote], {})).toThrow(
      /VIOLIN_OVSDB_REMOTES has ssl:.*, but VIOLIN_OVSDB_TLS_DIR names no client certificate for it \(chart: ovsdb\.tls\.secretName\)/,
    );
    expect(ovsdbTls(['tcp:10.0.0.1:6640'], {})).toBeUndefined();
  });
});
