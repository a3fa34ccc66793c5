// A small PKI for the lab and the tests: a certificate authority and the
// server and client certificates it signs, for OpenFlow over TLS (the OFC's
// ssl: listener, ovs-vswitchd's ssl: controller target) and OVSDB over TLS
// (ovsdb-server's pssl: remote). Both ends of both protocols authenticate each
// other, as OVS does (`ovs-vsctl set-ssl key cert cacert`), so every
// certificate here can serve and be a client.
//
// X.509 issuance is not in node:crypto, so this drives the openssl CLI, as
// credentials.ts does for the API server. EC P-256 keys: quick to make, and
// accepted by OVS's OpenSSL and by Node.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** A key and its certificate, as PEM files. */
export interface CertificateFiles {
  keyPath: string;
  certPath: string;
}

/** What node:tls and OvsdbClient take: key, certificate and the CA to trust, as PEM. */
export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
  ca: Buffer;
}

export interface IssueOptions {
  /** DNS names and IP addresses the peer may be reached at (subjectAltName); a server needs one. */
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Validity in days (default: the authority's). */
  days?: number;
}

export interface CertificateAuthority extends CertificateFiles {
  name: string;
  /** Issues a certificate for `name` (its CN and file stem), usable for TLS server and client auth. */
  issue(name: string, options?: IssueOptions): Promise<CertificateFiles>;
  /** Key and certificate of `issued`, with this authority as the CA to trust. */
  material(issued: CertificateFiles): Promise<TlsMaterial>;
}

export interface CreateAuthorityOptions {
  /** Validity in days of the CA and, by default, of what it issues (default 30). */
  days?: number;
}

/** File stems and common names: plain, so they are safe in a path and in an openssl -subj. */
const NAME = /^[a-z0-9]([a-z0-9.-]{0,62})$/;

function checkName(what: string, name: string): string {
  if (!NAME.test(name)) {
    throw new Error(
      `${what} ${JSON.stringify(name)} is not a valid certificate name (lowercase letters, digits, '.', '-'; at most 63)`,
    );
  }
  return name;
}

async function openssl(args: string[], what: string): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (err) {
    const error = err as NodeJS.ErrnoException & { stderr?: string };
    const reason =
      error.code === 'ENOENT'
        ? 'openssl is not installed (Debian package openssl)'
        : (error.stderr?.trim() ?? error.message);
    throw new Error(`cannot create ${what}: ${reason}`, { cause: err });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A random positive serial (the leading 01 keeps it positive and 16 bytes long), so two authorities (or two runs) never need a shared serial file. */
function randomSerial(): string {
  return `0x01${randomBytes(15).toString('hex')}`;
}

/**
 * Creates a self-signed CA named `name` in `dir` (`<name>.key`, `<name>.crt`).
 * The directory is created when missing; keys are written readable by the owner only.
 */
export async function createCertificateAuthority(
  dir: string,
  name: string,
  options: CreateAuthorityOptions = {},
): Promise<CertificateAuthority> {
  checkName('CA name', name);
  const days = options.days ?? 30;
  if (!Number.isInteger(days) || days < 1) throw new Error(`days must be a positive integer, got ${days}`);
  await mkdir(dir, { recursive: true });
  const authority: CertificateFiles = {
    keyPath: join(dir, `${name}.key`),
    certPath: join(dir, `${name}.crt`),
  };
  await openssl(
    [
      ...['req', '-x509', ...EC_KEY, '-keyout', authority.keyPath, '-out', authority.certPath],
      ...['-days', String(days), '-subj', `/CN=${name}`, '-set_serial', randomSerial()],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ],
    `the certificate authority ${name}`,
  );
  await chmod(authority.keyPath, 0o600);

  return {
    name,
    ...authority,
    async issue(leafName, issueOptions = {}) {
      checkName('certificate name', leafName);
      const leafDays = issueOptions.days ?? days;
      const ips = issueOptions.ipAddresses ?? [];
      const badIp = ips.find((ip) => isIP(ip) === 0);
      if (badIp !== undefined) throw new Error(`${JSON.stringify(badIp)} is not an IP address`);
      const dnsNames = (issueOptions.dnsNames ?? []).map((dns) => checkName('DNS name', dns));
      const altNames = [...dnsNames.map((dns) => `DNS:${dns}`), ...ips.map((ip) => `IP:${ip}`)];
      const issued: CertificateFiles = {
        keyPath: join(dir, `${leafName}.key`),
        certPath: join(dir, `${leafName}.crt`),
      };
      const request = join(dir, `${leafName}.csr`);
      const extensions = join(dir, `${leafName}.ext`);
      await writeFile(
        extensions,
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature,keyEncipherment',
          'extendedKeyUsage=serverAuth,clientAuth',
          ...(altNames.length > 0 ? [`subjectAltName=${altNames.join(',')}`] : []),
          '',
        ].join('\n'),
      );
      try {
        await openssl(
          ['req', '-new', ...EC_KEY, '-keyout', issued.keyPath, '-out', request, '-subj', `/CN=${leafName}`],
          `the key of ${leafName}`,
        );
        await chmod(issued.keyPath, 0o600);
        await openssl(
          [
            ...['x509', '-req', '-in', request, '-CA', authority.certPath, '-CAkey', authority.keyPath],
            ...['-set_serial', randomSerial(), '-days', String(leafDays), '-extfile', extensions],
            ...['-out', issued.certPath],
          ],
          `the certificate of ${leafName} signed by ${name}`,
        );
      } finally {
        await rm(request, { force: true });
        await rm(extensions, { force: true });
      }
      return issued;
    },
    async material(issued) {
      const [key, cert, ca] = await Promise.all([
        readFile(issued.keyPath),
        readFile(issued.certPath),
        readFile(authority.certPath),
      ]);
      return { key, cert, ca };
    },
  };
}
