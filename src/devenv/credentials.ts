import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage } from '../errors.js';

const execFileAsync = promisify(execFile);

/** The user the admin kubeconfig authenticates as; system:masters bypasses RBAC, as for a cluster admin. */
export const ADMIN_USER = 'violin-admin';
const ADMIN_GROUP = 'system:masters';

export interface ControlPlaneCredentials {
  servingCertPath: string;
  servingKeyPath: string;
  /** PEM of the self-signed serving certificate; kubeconfigs trust exactly it. */
  servingCertPem: string;
  serviceAccountPublicKeyPath: string;
  serviceAccountPrivateKeyPath: string;
  tokenFilePath: string;
  adminToken: string;
}

/**
 * Writes everything kube-apiserver needs to run with authentication and RBAC on:
 * a self-signed serving certificate for `address` (openssl: node:crypto cannot
 * issue X.509 certificates), the key pair that signs service-account tokens
 * (so the TokenRequest API works), and a static token for an admin user.
 */
export async function writeControlPlaneCredentials(
  dir: string,
  address = '127.0.0.1',
): Promise<ControlPlaneCredentials> {
  const servingCertPath = join(dir, 'apiserver.crt');
  const servingKeyPath = join(dir, 'apiserver.key');
  try {
    await execFileAsync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '30',
      '-subj',
      '/CN=violin-local-apiserver',
      '-addext',
      // 10.96.0.1: the `kubernetes` Service, as pods on lab nodes reach it.
      `subjectAltName=IP:${address},IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc`,
      '-keyout',
      servingKeyPath,
      '-out',
      servingCertPath,
    ]);
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'openssl is not installed' : errorMessage(err);
    throw new Error(
      `cannot create the API server's serving certificate: ${reason} (install the Debian package openssl)`,
      { cause: err },
    );
  }
  const servingCertPem = await readFile(servingCertPath, 'utf8');

  // ECDSA P-256: as good as RSA for signing tokens and much faster to generate.
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const serviceAccountPublicKeyPath = join(dir, 'sa.pub');
  const serviceAccountPrivateKeyPath = join(dir, 'sa.key');
  await writeFile(serviceAccountPublicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(serviceAccountPrivateKeyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });

  const adminToken = randomBytes(24).toString('hex');
  const tokenFilePath = join(dir, 'tokens.csv');
  await writeFile(tokenFilePath, `${adminToken},${ADMIN_USER},${ADMIN_USER},"${ADMIN_GROUP}"\n`, {
    mode: 0o600,
  });

  return {
    servingCertPath,
    servingKeyPath,
    servingCertPem,
    serviceAccountPublicKeyPath,
    serviceAccountPrivateKeyPath,
    tokenFilePath,
    adminToken,
  };
}
