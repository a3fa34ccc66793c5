// A real kube-apiserver and etcd on loopback, for integration tests, the lab
// and people poking with kubectl (`violin dev apiserver`). The same binaries a
// cluster runs, built from their Go modules by hack/ (see binaries.ts); only
// the controllers of kube-controller-manager are absent: nothing garbage-collects
// or finishes deleting namespaces here.
import type { KubeConfig, V1CustomResourceDefinition } from '@kubernetes/client-node';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBinaries } from './binaries.js';
import { installCrds, readCrdManifests } from './crds.js';
import { ADMIN_USER, writeControlPlaneCredentials, type ControlPlaneCredentials } from './credentials.js';
import { freeLoopbackPort } from './free-port.js';
import { createCertificateAuthority, type CertificateFiles } from './pki.js';
import {
  kubeconfigForServiceAccount,
  tokenKubeConfig,
  type ServiceAccountTokenOptions,
} from './kubeconfig.js';
import { ManagedProcess } from './managed-process.js';
import { repoRoot } from './repo.js';
import { errorMessage } from '../errors.js';

export interface LocalControlPlaneOptions {
  /**
   * Working directory (certificates, etcd data, logs, kubeconfig), kept by stop() for inspection; etcd data
   * in it is wiped at start (every control plane starts empty). Default: a fresh temp dir that stop() removes
   * (a failed start keeps its logs there, and says where).
   */
  dir?: string;
  /** Directories whose CRD manifests are installed. Default: crds/ and test/fixtures/crds/ of this repository. */
  crdDirs?: string[];
  /** Progress messages (one line each). */
  log?: (message: string) => void;
  /** How long to wait for /readyz and for the CRDs. Default: 90 s (a loaded 2-core machine is slow). */
  readyTimeoutMs?: number;
  /**
   * Serve kubelets and their pods too (lab/nodes): listen and advertise at `address` (the host end of a
   * link into the lab nodes' network namespace) instead of loopback, keep the `kubernetes` Service's
   * endpoints, and admit pods through the ServiceAccount plugin so they get their tokens.
   */
  kubelets?: { address: string };
}

export interface LocalControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  dir: string;
  /** Admin kubeconfig (group system:masters) written to `dir`. */
  kubeconfigPath: string;
  /** The self-signed serving certificate: what clients trust, and the root CA pods are given. */
  caPath: string;
  kubeConfig: KubeConfig;
  /** PIDs, for tests that kill the API server on purpose (apiserver changes when it is restarted). */
  pids: { etcd: number | undefined; apiserver: number | undefined };
  /** Kills kube-apiserver (only) with `signal` and waits until it is gone; etcd keeps every object. */
  killApiserver(signal: NodeJS.Signals): Promise<void>;
  /** Starts kube-apiserver again, same port, certificates and etcd, and waits until /readyz is ok. */
  restartApiserver(): Promise<void>;
  /** Milliseconds from the call to ready with every CRD served. */
  startupMs: number;
  /** A kubeconfig acting as an existing ServiceAccount, with a token from the TokenRequest API. */
  kubeconfigForServiceAccount(
    namespace: string,
    name: string,
    options?: ServiceAccountTokenOptions,
  ): Promise<KubeConfig>;
  /** Stops kube-apiserver then etcd (by PID) and removes the temp dir if this call created it. */
  stop(): Promise<void>;
}

export function defaultCrdDirs(): string[] {
  return [join(repoRoot(), 'crds'), join(repoRoot(), 'test', 'fixtures', 'crds')];
}

// Admission plugins that are on by default but act on objects this project's
// tests never create (pods, PVCs, ingresses, certificates, quotas). Turning them
// off trims startup. ServiceAccount goes too: without kube-controller-manager no
// namespace gets a `default` ServiceAccount, and the plugin would refuse pods.
const UNUSED_ADMISSION_PLUGINS = [
  'ServiceAccount',
  'LimitRanger',
  'PodSecurity',
  'Priority',
  'DefaultTolerationSeconds',
  'DefaultStorageClass',
  'StorageObjectInUseProtection',
  'PersistentVolumeClaimResize',
  'RuntimeClass',
  'TaintNodesByCondition',
  'DefaultIngressClass',
  'ResourceQuota',
  'CertificateApproval',
  'CertificateSigning',
  'CertificateSubjectRestriction',
  'ClusterTrustBundleAttest',
];

// With kubelets, pods are real: the ServiceAccount plugin mounts their tokens
// (kube-controller-manager creates the `default` ServiceAccounts it needs).
function disabledAdmissionPlugins(options: LocalControlPlaneOptions): string[] {
  return options.kubelets
    ? UNUSED_ADMISSION_PLUGINS.filter((p) => p !== 'ServiceAccount')
    : UNUSED_ADMISSION_PLUGINS;
}

const START_ATTEMPTS = 3;

export async function startLocalControlPlane(
  options: LocalControlPlaneOptions = {},
): Promise<LocalControlPlane> {
  const began = Date.now();
  const log = options.log ?? (() => {});
  const binaries = await ensureBinaries(['etcd', 'kube-apiserver'], log);
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'violin-cp-')));
  await mkdir(dir, { recursive: true });

  try {
    // Read the manifests first: a broken one should fail before two processes start.
    const crds = await readCrdManifests(options.crdDirs ?? defaultCrdDirs());
    const credentials = await writeControlPlaneCredentials(dir, options.kubelets?.address);
    const frontProxy = await writeFrontProxyCredentials(join(dir, 'front-proxy'));
    for (let attempt = 1; ; attempt++) {
      try {
        return await startOnce(dir, ownsDir, credentials, frontProxy, binaries, crds, options, began, log);
      } catch (err) {
        // Free ports are picked, then bound by the child: another process may win the race.
        if (!(err instanceof PortRaceError) || attempt >= START_ATTEMPTS) throw err;
        log(`a port was taken between picking and binding it; retrying (attempt ${attempt + 1})`);
      }
    }
  } catch (err) {
    // The logs stay (the error names them) for a post-mortem; etcd's preallocated WAL does not.
    await rm(join(dir, 'etcd'), { recursive: true, force: true });
    throw err;
  }
}

class PortRaceError extends Error {}

/** The aggregator's side of API aggregation: the CA extension API servers trust, and the client certificate it proxies with. */
interface FrontProxyCredentials {
  caPath: string;
  client: CertificateFiles;
}

/** The name extension API servers accept in the aggregator's client certificate (--requestheader-allowed-names), as kubeadm names it. */
export const FRONT_PROXY_CLIENT = 'front-proxy-client';

/**
 * A front-proxy CA and its client certificate, as kubeadm makes them: the API server proxies requests
 * for aggregated APIs (an APIService, e.g. KubeVirt's subresources.kubevirt.io) with this certificate
 * and the user in X-Remote-* headers; the extension server trusts the headers only from a client this CA
 * signed. The API server publishes the CA and the header names in the ConfigMap
 * kube-system/extension-apiserver-authentication, where extension servers read them.
 */
async function writeFrontProxyCredentials(dir: string): Promise<FrontProxyCredentials> {
  const authority = await createCertificateAuthority(dir, 'front-proxy-ca');
  return { caPath: authority.certPath, client: await authority.issue(FRONT_PROXY_CLIENT) };
}

async function startOnce(
  dir: string,
  ownsDir: boolean,
  credentials: ControlPlaneCredentials,
  frontProxy: FrontProxyCredentials,
  binaries: Record<'etcd' | 'kube-apiserver', string>,
  crds: V1CustomResourceDefinition[],
  options: LocalControlPlaneOptions,
  began: number,
  log: (message: string) => void,
): Promise<LocalControlPlane> {
  const [etcdClientPort, etcdPeerPort, apiserverPort] = await distinctFreePorts(3);
  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const etcdPeerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  const address = options.kubelets?.address ?? '127.0.0.1';
  const server = `https://${address}:${apiserverPort}`;
  const etcdDataDir = join(dir, 'etcd');
  // A retry must not inherit a half-initialised member from the failed attempt.
  await rm(etcdDataDir, { recursive: true, force: true });

  log(`starting etcd on ${etcdUrl}`);
  const etcd = new ManagedProcess(
    'etcd',
    binaries.etcd,
    [
      '--name=violin',
      `--data-dir=${etcdDataDir}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=violin=${etcdPeerUrl}`,
      // Throwaway data: durability buys nothing and fsync dominates write latency.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    join(dir, 'etcd.log'),
  );
  // kube-apiserver retries its etcd connection, so both start at once.
  log(`starting kube-apiserver on ${server}`);
  const startApiserver = (): ManagedProcess =>
    new ManagedProcess(
      'kube-apiserver',
      binaries['kube-apiserver'],
      [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${address}`,
        `--advertise-address=${address}`,
        `--secure-port=${apiserverPort}`,
        `--cert-dir=${join(dir, 'generated-certs')}`,
        `--tls-cert-file=${credentials.servingCertPath}`,
        `--tls-private-key-file=${credentials.servingKeyPath}`,
        `--token-auth-file=${credentials.tokenFilePath}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${credentials.serviceAccountPublicKeyPath}`,
        `--service-account-signing-key-file=${credentials.serviceAccountPrivateKeyPath}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        ...(options.kubelets
          ? // Kubelets register by name only; their InternalIP is how to reach them.
            ['--kubelet-preferred-address-types=InternalIP']
          : // No kubelets, no Service endpoints to keep: skip the reconciler and its leases.
            ['--endpoint-reconciler-type=none']),
        '--enable-priority-and-fairness=false',
        '--profiling=false',
        // As kubeadm and kind do: the chart's snapshot-host agent is privileged, and a
        // server-side dry run of it must be judged by RBAC and schema, not refused outright.
        '--allow-privileged=true',
        `--disable-admission-plugins=${disabledAdmissionPlugins(options).join(',')}`,
        // API aggregation (kubeadm's flags). The aggregator reaches an APIService's Service at its
        // ClusterIP, or with --enable-aggregator-routing at its Endpoints; with no kube-proxy here the
        // ClusterIP leads nowhere, and Endpoints may not hold loopback addresses. It stays off: the lab
        // registers its extension servers behind ExternalName Services (lab/kubevirt-standin/api-service.ts),
        // which the aggregator resolves by name.
        `--requestheader-client-ca-file=${frontProxy.caPath}`,
        `--requestheader-allowed-names=${FRONT_PROXY_CLIENT}`,
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        `--proxy-client-cert-file=${frontProxy.client.certPath}`,
        `--proxy-client-key-file=${frontProxy.client.keyPath}`,
      ],
      join(dir, 'kube-apiserver.log'),
    );
  let apiserver = startApiserver();
  const processes = [apiserver, etcd];
  const killOnExit = (): void => processes.forEach((p) => p.killNow());
  process.on('exit', killOnExit);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await apiserver.stop();
      await etcd.stop();
      process.off('exit', killOnExit);
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const readyTimeoutMs = options.readyTimeoutMs ?? 90_000;
  try {
    await waitForReadyz(server, credentials, apiserver, etcd, readyTimeoutMs);
    const kubeConfig = tokenKubeConfig(
      server,
      credentials.servingCertPem,
      ADMIN_USER,
      credentials.adminToken,
    );
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeConfig.exportConfig(), { mode: 0o600 });

    log(`installing ${crds.length} CRDs`);
    await installCrds(kubeConfig, crds, readyTimeoutMs);

    const startupMs = Date.now() - began;
    log(`control plane ready in ${startupMs} ms`);
    const pids = { etcd: etcd.pid, apiserver: apiserver.pid };
    return {
      server,
      dir,
      kubeconfigPath,
      caPath: credentials.servingCertPath,
      kubeConfig,
      pids,
      startupMs,
      kubeconfigForServiceAccount: (namespace, name, tokenOptions) =>
        kubeconfigForServiceAccount(kubeConfig, namespace, name, tokenOptions),
      async killApiserver(signal) {
        if (apiserver.pid !== undefined && apiserver.running) process.kill(apiserver.pid, signal);
        await apiserver.exited;
      },
      async restartApiserver() {
        if (apiserver.running) throw new Error('kube-apiserver is still running; kill it first');
        apiserver = startApiserver();
        processes[0] = apiserver;
        pids.apiserver = apiserver.pid;
        await waitForReadyz(server, credentials, apiserver, etcd, readyTimeoutMs);
      },
      stop,
    };
  } catch (err) {
    const apiserverTail = await apiserver.logTail();
    const etcdTail = await etcd.logTail(15);
    await apiserver.stop();
    await etcd.stop();
    process.off('exit', killOnExit);
    if (/address already in use/.test(apiserverTail + etcdTail)) {
      throw new PortRaceError(`port taken: ${errorMessage(err)}`, { cause: err });
    }
    throw new Error(
      `local control plane did not start: ${errorMessage(err)}\n` +
        `--- kube-apiserver log (tail of ${apiserver.logPath}) ---\n${apiserverTail}\n` +
        `--- etcd log (tail of ${etcd.logPath}) ---\n${etcdTail}`,
      { cause: err },
    );
  }
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freeLoopbackPort());
  return [...ports];
}

async function waitForReadyz(
  server: string,
  credentials: ControlPlaneCredentials,
  apiserver: ManagedProcess,
  etcd: ManagedProcess,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (!apiserver.running) throw new Error('kube-apiserver exited during startup');
    if (!etcd.running) throw new Error('etcd exited during startup');
    last = await getReadyz(server, credentials).catch((err: unknown) => errorMessage(err));
    if (last === 'ok') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`kube-apiserver was not ready within ${timeoutMs} ms (last /readyz: ${last})`);
}

function getReadyz(server: string, credentials: ControlPlaneCredentials): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server}/readyz`,
      {
        ca: credentials.servingCertPem,
        headers: { authorization: `Bearer ${credentials.adminToken}` },
        timeout: 2000,
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () =>
          resolve(res.statusCode === 200 ? 'ok' : `HTTP ${res.statusCode}: ${body.slice(0, 500)}`),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}
