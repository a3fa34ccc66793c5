// `violin agent`: the snapshot-host agent of one node (a DaemonSet pod in a
// cluster, one process per lab node). It serves the agent API (src/agent/server.ts)
// for the VMs registered in --state-dir (src/agent/vm-dir.ts, docs/lab.md) and,
// with --pods-dir, for the VMs of the node's virt-launcher pods through their
// libvirt (src/agent/libvirt/, docs/lab.md).
// Before it serves, it takes over what an earlier agent on the same state dir
// left when it died: guests a capture stopped, pauses still held.
import { mkdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import type { Command } from '../dispatch.js';
import { untilSignal } from '../signals.js';
import { createLogger } from '../../operator/log.js';
import { QmpSnapshotAgent } from '../../agent/qmp-agent.js';
import type { LiveCaptureMethod } from '../../agent/qmp-agent.js';
import type { LibvirtMode } from '../../agent/libvirt/launcher-pod.js';
import { startAgentServer } from '../../agent/server.js';
import type { AgentTlsFiles } from '../../agent/tls.js';
import { ApiTokenReviewer, CallerAuth, DEFAULT_AGENT_TOKEN_AUDIENCE } from '../../agent/auth.js';
import { KubeConfig } from '@kubernetes/client-node';
import { imageStoreUnder } from '../../agent/image-store.js';
import { startPruning } from '../../agent/pruning.js';
import { seconds } from '../flags.js';
import { pathToFileURL } from 'node:url';
import { checkStorageRoot, DEFAULT_STORAGE_ROOT } from '../../store/confinement.js';
import { errorMessage } from '../../errors.js';

const USAGE = `usage: violin agent --node NAME --state-dir DIR [options]

  --node NAME          the node this agent serves (reported by /healthz and in logs)
  --state-dir DIR      the node's VM folders: DIR/vms/<namespace>/<name>/{vm.json,qmp.sock,...}
  --pods-dir DIR       the host's kubelet pods directory (/var/lib/kubelet/pods, mounted
                       at /pods as virt-handler does): enables the libvirt backend for
                       requests that name a launcher pod (launcherPodUid)
  --libvirt-mode M     how the launchers' libvirt is addressed: session (virt-launcher's
                       default, non-root) or system (its Root feature gate)
  --work-dir DIR       the libvirt backend's scratch space: capture pipes, and a load's
                       qcow2 file, as large as the image (default STATE-DIR/libvirt)
  --ovs-rundir DIR     the node's Open vSwitch run directory (ovs-vswitchd.pid and its
                       control socket), for /v1/datapath/sync (default /var/run/openvswitch)
  --tls-cert FILE      serve HTTPS with this certificate (PEM; for the name violin-agent, as
  --tls-key FILE       the operator checks it) and key; both or neither. Reloaded when changed
  --listen HOST:PORT   where the agent API listens (default 127.0.0.1:7443; port 0 picks one)
  --downtime-limit MS  QEMU's target for the stop-and-copy of a capture (default 50)
  --live-method M      how a capture that resumes at once copies the running guest:
                       precopy (default) or background-snapshot
  --pause-deadline MS  how long a 'resume: OnRequest' capture may keep its VM paused
                       before the agent resumes it itself (default 10000)
  --max-bandwidth MIB  cap on a capture's copy rate in MiB/s (default 8192): spares a
                       snapshot host's disk, at the price of longer captures
  --storage-root DIR   every file:// storage location must be inside DIR, reached through
                       no symbolic link (default ${DEFAULT_STORAGE_ROOT}, the chart's bundles hostPath)
  --allowed-caller U   the identity allowed to call the API (repeatable), e.g.
                       system:serviceaccount:violin-system:violin-operator; every endpoint
                       but /healthz needs that caller's bearer token, checked with TokenReview
  --token-audience A   the audience callers' tokens must be minted for (default ${DEFAULT_AGENT_TOKEN_AUDIENCE})
  --kubeconfig PATH    credentials for TokenReview (env KUBECONFIG; default: in-cluster, the
                       agent's ServiceAccount, which needs 'create' on tokenreviews)
  --insecure-no-auth   serve without authentication; only with --listen on a loopback address
                       (tests on one machine): anyone who reaches the port could drive the agent
  --abandoned-after S  a partial bundle (never committed) untouched this many seconds is pruned
                       (default 86400); so are leftovers of interrupted deletions (.deleting-*)
  --prune-interval S   seconds between prunings of the storage root and every location written
                       to since start (default 3600; the first at start)
  --log-level LEVEL    pino level (env LOG_LEVEL; default info)
`;

function parseListen(value: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match?.[1] || !Number.isInteger(port) || port > 65535) {
    throw new Error(`--listen: expected HOST:PORT, got '${value}'`);
  }
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

function parsePositiveInteger(flag: string, unit: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0)
    throw new Error(`${flag}: expected a positive number of ${unit}, got '${value}'`);
  return number;
}

/**
 * An agent answers only callers it was told to trust; serving without that is
 * allowed on loopback only, where no pod or other node can reach it.
 */
function checkAuthFlags(callers: string[], insecure: boolean, host: string): void {
  if (callers.length > 0 && insecure)
    throw new Error('--allowed-caller and --insecure-no-auth exclude each other');
  if (callers.length > 0) return;
  if (!insecure) {
    throw new Error(
      '--allowed-caller is required (the identity of the operator, e.g. system:serviceaccount:violin-system:violin-operator)',
    );
  }
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (!loopback) {
    throw new Error(`--insecure-no-auth is allowed only with --listen on a loopback address, not ${host}`);
  }
}

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (path) kubeConfig.loadFromFile(path);
  else kubeConfig.loadFromCluster();
  return kubeConfig;
}

/** `--tls-cert` and `--tls-key` go together. */
function tlsFiles(certFile: string | undefined, keyFile: string | undefined): AgentTlsFiles | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (!certFile || !keyFile) throw new Error('--tls-cert and --tls-key go together');
  return { certFile, keyFile };
}

export const command: Command = {
  summary: 'run the snapshot-host agent of a node (live capture and load, over QMP or libvirt)',
  async run(argv) {
    let values;
    let listen;
    let downtimeLimitMs: number | undefined;
    let pauseDeadlineMs: number | undefined;
    let maxBandwidthMiB: number | undefined;
    let liveMethod: LiveCaptureMethod | undefined;
    let storageRoot: string;
    let abandonedAfterMs: number;
    let pruneIntervalMs: number;
    let libvirtMode: LibvirtMode | undefined;
    let tls: AgentTlsFiles | undefined;
    try {
      ({ values } = parseArgs({
        args: argv,
        options: {
          node: { type: 'string' },
          'state-dir': { type: 'string' },
          'pods-dir': { type: 'string' },
          'libvirt-mode': { type: 'string' },
          'work-dir': { type: 'string' },
          'ovs-rundir': { type: 'string' },
          'tls-cert': { type: 'string' },
          'tls-key': { type: 'string' },
          listen: { type: 'string' },
          'downtime-limit': { type: 'string' },
          'pause-deadline': { type: 'string' },
          'max-bandwidth': { type: 'string' },
          'live-method': { type: 'string' },
          'storage-root': { type: 'string' },
          'allowed-caller': { type: 'string', multiple: true },
          'token-audience': { type: 'string' },
          kubeconfig: { type: 'string' },
          'insecure-no-auth': { type: 'boolean' },
          'abandoned-after': { type: 'string' },
          'prune-interval': { type: 'string' },
          'log-level': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
        strict: true,
      }));
      if (values.help) {
        process.stdout.write(USAGE);
        return 0;
      }
      if (!values.node) throw new Error('--node is required');
      if (!values['state-dir']) throw new Error('--state-dir is required');
      listen = parseListen(values.listen ?? '127.0.0.1:7443');
      downtimeLimitMs = parsePositiveInteger('--downtime-limit', 'milliseconds', values['downtime-limit']);
      pauseDeadlineMs = parsePositiveInteger('--pause-deadline', 'milliseconds', values['pause-deadline']);
      maxBandwidthMiB = parsePositiveInteger('--max-bandwidth', 'MiB/s', values['max-bandwidth']);
      const method = values['live-method'];
      if (method !== undefined && method !== 'precopy' && method !== 'background-snapshot')
        throw new Error(`--live-method: expected precopy or background-snapshot, got '${method}'`);
      liveMethod = method;
      storageRoot = checkStorageRoot(values['storage-root'] ?? DEFAULT_STORAGE_ROOT);
      checkAuthFlags(values['allowed-caller'] ?? [], values['insecure-no-auth'] ?? false, listen.host);
      tls = tlsFiles(values['tls-cert'], values['tls-key']);
      abandonedAfterMs = seconds('abandoned-after', values['abandoned-after'], 86_400);
      pruneIntervalMs = seconds('prune-interval', values['prune-interval'], 3_600);
      const mode = values['libvirt-mode'];
      if (mode !== undefined && mode !== 'session' && mode !== 'system')
        throw new Error(`--libvirt-mode: expected session or system, got '${mode}'`);
      libvirtMode = mode;
    } catch (error) {
      process.stderr.write(`violin agent: ${errorMessage(error)}\n${USAGE}`);
      return 2;
    }
    const logger = createLogger({
      component: 'violin-agent',
      level: values['log-level'],
      fields: { node: values.node },
    });
    const stateDir = values['state-dir'];
    const written = new Set<string>([pathToFileURL(storageRoot).href]);
    let server;
    let agent: QmpSnapshotAgent;
    try {
      await mkdir(stateDir, { recursive: true });
      agent = new QmpSnapshotAgent({
        stateDir,
        downtimeLimitMs,
        pauseDeadlineMs,
        maxBandwidthBytesPerSecond: maxBandwidthMiB === undefined ? undefined : maxBandwidthMiB * 1024 ** 2,
        liveMethod,
        images: imageStoreUnder({ fileRoot: storageRoot }, (location) => written.add(location)),
        podsDir: values['pods-dir'],
        libvirtMode,
        workDir: values['work-dir'],
        ovsRunDir: values['ovs-rundir'],
        log: (line) => logger.warn(line),
      });
      // Before serving: a resumeCaptured must find the pauses an earlier agent held.
      await agent.recoverCaptures();
      const callers = values['allowed-caller'] ?? [];
      server = await startAgentServer(agent, {
        node: values.node,
        ...listen,
        log: (line) => logger.info(line),
        confinement: { fileRoot: storageRoot },
        tls,
        auth:
          callers.length === 0
            ? undefined
            : new CallerAuth({
                reviewer: new ApiTokenReviewer(loadKubeConfig(values.kubeconfig ?? process.env.KUBECONFIG)),
                audience: values['token-audience'] ?? DEFAULT_AGENT_TOKEN_AUDIENCE,
                allowedCallers: callers,
              }),
      });
      if (callers.length === 0) logger.warn('serving WITHOUT authentication (--insecure-no-auth)');
    } catch (error) {
      process.stderr.write(`violin agent: ${errorMessage(error)}\n`);
      return 1;
    }
    logger.info({ url: server.url, stateDir, storageRoot }, 'agent listening');
    const pruning = startPruning({
      locations: () => [...written],
      confinement: { fileRoot: storageRoot },
      abandonedAfterMs,
      intervalMs: pruneIntervalMs,
      log: (line) => logger.info(line),
    });
    const running = server;
    const stopping = agent;
    // VMs are separate processes and keep running when the agent stops; none
    // may stay paused waiting for a resumeCaptured this agent can no longer serve.
    await untilSignal();
    // Requests in flight first: a capture that finishes meanwhile may hold its VM too.
    await running.close();
    await pruning.stop();
    await stopping.releasePausedVms();
    return 0;
  },
};
