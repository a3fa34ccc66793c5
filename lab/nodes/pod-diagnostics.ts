// What a node's admin looks at when a pod misbehaves, in a few lines: every
// container's state, restarts and last exit, and the end of the logs of those
// not running or restarted (the kubelet's stock /var/log/pods on the pod's own
// node). A test on the lab's nodes adds it to its failure, because CI keeps
// only the failure's message.
import { CoreV1Api, type V1ContainerStatus, type V1Pod } from '@kubernetes/client-node';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { NodesCluster } from './cluster.js';

/** Lines of a container's log kept in the diagnostics. */
const LOG_TAIL_LINES = 8;

/** The pods of `namespace`: one line per container, then the log tails of the troubled ones. */
export async function podDiagnostics(cluster: NodesCluster, namespace: string): Promise<string> {
  const core = cluster.controlPlane.kubeConfig.makeApiClient(CoreV1Api);
  const pods = (await core.listNamespacedPod({ namespace })).items;
  const lines: string[] = [];
  const tails: string[] = [];
  for (const pod of pods) {
    // A pod the kubelet refused or evicted has no container to describe, only its reason.
    if (pod.status?.reason)
      lines.push(
        `${pod.metadata?.name} on ${pod.spec?.nodeName ?? '-'}: ${pod.status.phase} (${pod.status.reason}: ${pod.status.message ?? ''})`,
      );
    for (const status of pod.status?.containerStatuses ?? []) {
      lines.push(`${pod.metadata?.name}/${status.name} on ${pod.spec?.nodeName ?? '-'}: ${describe(status)}`);
      if (status.state?.running && status.restartCount === 0) continue;
      tails.push(...(await logTail(cluster, pod, status.name)));
    }
  }
  return [...lines, ...tails].join('\n');
}

function describe(status: V1ContainerStatus): string {
  const state = status.state?.running
    ? `running since ${status.state.running.startedAt?.toISOString()}`
    : status.state?.waiting
      ? `waiting (${status.state.waiting.reason}: ${status.state.waiting.message ?? ''})`
      : `terminated (${status.state?.terminated?.reason}, exit ${status.state?.terminated?.exitCode})`;
  const last = status.lastState?.terminated;
  const lastExit = last
    ? `; last exit ${last.exitCode} (${last.reason}) at ${last.finishedAt?.toISOString()}`
    : '';
  return `${state}, ${status.restartCount} restarts${lastExit}`;
}

/**
 * The log files the kubelet keeps for a pod's container on its node (this run and the ones before),
 * oldest first, with their text: read from the node's disk, as the API server's log subresource
 * would need a kubelet client certificate the lab does not give it.
 */
export async function containerLogs(
  cluster: NodesCluster,
  pod: V1Pod,
  container: string,
): Promise<{ file: string; text: string }[]> {
  const node = cluster.nodes.find((n) => n.name === pod.spec?.nodeName);
  if (!node) return [];
  const dir = node.root.hostPath(
    `/var/log/pods/${pod.metadata?.namespace}_${pod.metadata?.name}_${pod.metadata?.uid}/${container}`,
  );
  const files = (await readdir(dir).catch(() => [] as string[])).sort();
  return Promise.all(
    files.map(async (file) => ({ file, text: await readFile(join(dir, file), 'utf8').catch(() => '') })),
  );
}

/** The last lines of each log file the kubelet keeps for the container (this run and the one before). */
async function logTail(cluster: NodesCluster, pod: V1Pod, container: string): Promise<string[]> {
  const tails: string[] = [];
  for (const { file, text } of (await containerLogs(cluster, pod, container)).slice(-2)) {
    const last = text.trimEnd().split('\n').slice(-LOG_TAIL_LINES);
    tails.push(`--- ${pod.metadata?.name}/${container} log ${file}:`, ...last);
  }
  return tails;
}
