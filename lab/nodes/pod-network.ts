// Runs commands in a pod container's namespaces, as a node's admin would with
// nsenter: the lab's kubelets take no client certificate from the API server,
// so `kubectl exec` is refused (docs/lab.md, "Lab nodes"). The pod's container
// is found in its node's containerd by the CRI's labels, and its task's PID
// names its namespaces. In its network namespace the command is a program of
// this machine (this process's Node, ovs-vsctl); in its mount namespace, one
// of the container's image (what the container sees of its volumes).
import { run } from '../ovs/netns.js';
import type { LabNode } from './cluster.js';

/** PID of a running container of a pod, from the node's containerd. */
export async function containerPid(
  node: LabNode,
  pod: { namespace: string; name: string },
  container: string,
): Promise<number> {
  const ctr = (...args: string[]) =>
    run('ctr', ['--address', node.containerd.socket, '-n', 'k8s.io', ...args]);
  const ids = (await ctr('containers', 'ls', '-q')).stdout.split('\n').filter(Boolean);
  const tasks = new Map(
    (await ctr('tasks', 'ls')).stdout
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((cols) => cols[2] === 'RUNNING')
      .map((cols) => [cols[0]!, Number(cols[1])] as const),
  );
  for (const id of ids) {
    const pid = tasks.get(id);
    if (pid === undefined) continue;
    const info = JSON.parse((await ctr('containers', 'info', id)).stdout) as {
      Labels?: Record<string, string>;
    };
    const labels = info.Labels ?? {};
    if (
      labels['io.kubernetes.pod.namespace'] === pod.namespace &&
      labels['io.kubernetes.pod.name'] === pod.name &&
      labels['io.kubernetes.container.name'] === container
    )
      return pid;
  }
  throw new Error(`no running container ${container} of ${pod.namespace}/${pod.name} on ${node.name}`);
}

// An https URL is checked against the CA file and server name given after it (the agents' TLS).
const GET = `import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { readFileSync } from 'node:fs';
const [url, caFile, servername] = process.argv.slice(1);
const get = url.startsWith('https:') ? httpsGet : httpGet;
const tls = caFile ? { ca: readFileSync(caFile), servername } : {};
const answer = await new Promise((resolve, reject) => {
  const req = get(url, { ...tls, timeout: 10000 }, (res) => {
    let body = '';
    res.on('data', (chunk) => (body += chunk));
    res.on('end', () => resolve({ status: res.statusCode, body }));
  });
  req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
  req.on('error', reject);
});
if (answer.status !== 200) { console.error(answer.status + ' ' + answer.body); process.exit(1); }
process.stdout.write(answer.body);`;

/** Runs a command of this machine in the pod's network namespace only; its stdout. */
export async function runInPodNetwork(
  node: LabNode,
  pod: { namespace: string; name: string },
  container: string,
  argv: string[],
): Promise<string> {
  const pid = await containerPid(node, pod, container);
  return (await run('nsenter', [`--net=/proc/${pid}/ns/net`, '--', ...argv])).stdout;
}

/** Runs a command of the container's own image in its mount namespace (what it sees of its volumes); its stdout. */
export async function runInContainerMounts(
  node: LabNode,
  pod: { namespace: string; name: string },
  container: string,
  argv: string[],
): Promise<string> {
  const pid = await containerPid(node, pod, container);
  return (await run('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', ...argv])).stdout;
}

/**
 * GET `url` from the pod's network namespace; the body, or an error with the reason. An https URL is
 * verified against `tls`: a CA file of this machine and the name the certificate must carry.
 */
export function getFromPod(
  node: LabNode,
  pod: { namespace: string; name: string },
  container: string,
  url: string,
  tls?: { caFile: string; serverName: string },
): Promise<string> {
  const check = tls ? [tls.caFile, tls.serverName] : [];
  return runInPodNetwork(node, pod, container, [
    process.execPath,
    '--input-type=module',
    '--eval',
    GET,
    url,
    ...check,
  ]);
}
