// The operator's memory with many VirtualMachineInstances in its informer
// caches: `violin operator` as its own process against a real kube-apiserver,
// watching one namespace, started once with no VMI (baseline) and once with N.
// RSS is read when /readyz says every informer has synced.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';

import { freeLoopbackPort } from '../../src/devenv/free-port.js';
import { KUBEVIRT_GROUP, KUBEVIRT_VERSION, VMI_PLURAL } from '../../src/kubevirt/types.js';
import { chartNodeOptions, rssMiB, violinNodeArgs } from './rss.js';

/** Parallel creates: enough to be quick, few enough for a loaded API server. */
const CREATE_CONCURRENCY = 10;

export interface OperatorMemoryResult {
  vmis: number;
  rssEmptyMiB: number;
  rssWatchingMiB: number;
  /** From process start to /readyz with every informer synced. */
  readyEmptyMs: number;
  readyWatchingMs: number;
}

async function operatorRss(
  kubeconfigPath: string,
  namespace: string,
): Promise<{ rss: number; readyMs: number }> {
  const [metricsPort, probePort] = [await freeLoopbackPort(), await freeLoopbackPort()];
  const started = Date.now();
  const child = spawn(
    process.execPath,
    [
      ...violinNodeArgs(chartNodeOptions('operator')).args,
      ...['operator', '--kubeconfig', kubeconfigPath, '--namespace', namespace],
      ...['--metrics-bind-address', `127.0.0.1:${metricsPort}`],
      ...['--health-probe-bind-address', `127.0.0.1:${probePort}`],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LOG_LEVEL: 'warn' } },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`violin operator exited: ${stderr}`);
      const ready = await fetch(`http://127.0.0.1:${probePort}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (i > 1200) throw new Error(`violin operator not ready within 120 s: ${stderr}`);
      await sleep(100);
    }
    const readyMs = Date.now() - started;
    // A moment for the first reconciles (none: no DistributedSnapshot exists) and the GC to settle.
    await sleep(2000);
    return { rss: await rssMiB(child.pid!), readyMs };
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const late = await Promise.race([exited.then(() => false), sleep(35_000).then(() => true)]);
      if (late) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  }
}

/** Creates the namespace, measures, and deletes the namespace again. */
export async function measureOperatorMemory(
  kubeconfigPath: string,
  namespace: string,
  vmis: number,
  log: (message: string) => void,
): Promise<OperatorMemoryResult> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const custom = kubeConfig.makeApiClient(CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  try {
    const empty = await operatorRss(kubeconfigPath, namespace);
    log(`  memory: creating ${vmis} VirtualMachineInstances`);
    for (let first = 0; first < vmis; first += CREATE_CONCURRENCY) {
      const batch = Array.from({ length: Math.min(CREATE_CONCURRENCY, vmis - first) }, (_, k) => first + k);
      await Promise.all(
        batch.map((i) =>
          custom.createNamespacedCustomObject({
            group: KUBEVIRT_GROUP,
            version: KUBEVIRT_VERSION,
            namespace,
            plural: VMI_PLURAL,
            body: vmiBody(namespace, i),
          }),
        ),
      );
    }
    const watching = await operatorRss(kubeconfigPath, namespace);
    return {
      vmis,
      rssEmptyMiB: empty.rss,
      rssWatchingMiB: watching.rss,
      readyEmptyMs: empty.readyMs,
      readyWatchingMs: watching.readyMs,
    };
  } finally {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  }
}

/** A VMI shaped like the ones KubeVirt (and the lab's stand-in) create: a NIC on the snapshot network. */
function vmiBody(namespace: string, i: number) {
  const mac = `02:bd:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
  return {
    apiVersion: `${KUBEVIRT_GROUP}/${KUBEVIRT_VERSION}`,
    kind: 'VirtualMachineInstance',
    metadata: { name: `vm-${i}`, namespace, labels: { app: 'bench', tier: `t${i % 10}` } },
    spec: {
      domain: { memory: { guest: '128Mi' }, devices: { interfaces: [{ name: 'violin', macAddress: mac }] } },
      networks: [{ name: 'violin', multus: { networkName: 'violin-net' } }],
    },
  };
}
