// The lab PKI checked by openssl itself: what it issues verifies against its
// CA and not against another, carries the names asked for and the usages both
// ends of OpenFlow/OVSDB need, and keeps keys private; bad names are refused
// before openssl runs.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createCertificateAuthority } from '../../../src/devenv/pki.js';
import type { CertificateAuthority } from '../../../src/devenv/pki.js';
import { run } from '../../support/netns.js';
import { requireTool } from '../../support/require-tool.js';

describe('lab PKI (src/devenv/pki.ts)', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let other: CertificateAuthority;

  beforeAll(async () => {
    requireTool('openssl', 'Debian package openssl');
    dir = await mkdtemp(join(tmpdir(), 'violin-pki-'));
    ca = await createCertificateAuthority(join(dir, 'lab'), 'violin-lab-ca', { days: 2 });
    other = await createCertificateAuthority(join(dir, 'other'), 'other-ca', { days: 2 });
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('issues a certificate that verifies against its CA only, with the names and usages asked for', async () => {
    const issued = await ca.issue('ofc', {
      dnsNames: ['ofc.violin.test'],
      ipAddresses: ['169.254.3.5', '::1'],
    });
    const verified = await run('openssl', ['verify', '-CAfile', ca.certPath, issued.certPath]);
    expect(verified.stdout).toContain(': OK');
    await expect(run('openssl', ['verify', '-CAfile', other.certPath, issued.certPath])).rejects.toThrow();

    const text = (await run('openssl', ['x509', '-in', issued.certPath, '-noout', '-text'])).stdout;
    expect(text).toMatch(/Subject: CN ?= ?ofc/);
    expect(text).toMatch(/DNS:ofc\.violin\.test, IP Address:169\.254\.3\.5, IP Address:0:0:0:0:0:0:0:1/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/CA:FALSE/);
    expect((await stat(issued.keyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(ca.keyPath)).mode & 0o777).toBe(0o600);

    const material = await ca.material(issued);
    expect(material.ca.toString()).toContain('BEGIN CERTIFICATE');
    expect(material.key.toString()).toContain('PRIVATE KEY');
  });

  it('gives two certificates of one name different serials', async () => {
    const serial = async () =>
      (await run('openssl', ['x509', '-in', (await ca.issue('twice')).certPath, '-noout', '-serial'])).stdout;
    expect(await serial()).not.toBe(await serial());
  });

  it('refuses names that are not safe as a file stem or subject, and addresses that are not IPs', async () => {
    await expect(ca.issue('../escape')).rejects.toThrow(/"..\/escape" is not a valid certificate name/);
    await expect(ca.issue('CN=x/O=y')).rejects.toThrow(/not a valid certificate name/);
    await expect(ca.issue('ok', { dnsNames: ['bad name'] })).rejects.toThrow(/DNS name "bad name"/);
    await expect(ca.issue('ok', { ipAddresses: ['10.0.0.300'] })).rejects.toThrow(
      /"10\.0\.0\.300" is not an IP address/,
    );
    await expect(createCertificateAuthority(dir, 'x', { days: 0 })).rejects.toThrow(
      /days must be a positive integer/,
    );
  });
});
