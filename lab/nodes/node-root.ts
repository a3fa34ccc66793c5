// A lab node's own view of the machine's filesystem, as a separate machine
// would have it: a mount namespace per node in which /run, /var/lib and
// /var/log are bind mounts of the node's own directories. The node's
// containerd, kubelet and Open vSwitch run in it, so every path a component
// or the chart names by its stock value (/var/lib/kubelet/pods,
// /var/lib/violin/bundles, /var/run/openvswitch/db.sock, the kubelet's
// hard-coded device-plugin socket and certificate directory) is the node's
// own, and a pod's hostPath on node-1 is not node-2's. /usr, /etc, /proc, /sys
// and /dev stay the machine's (the nodes run the same software).
//
// The namespace is held by one process (`unshare ... sleep`) that made the
// mounts; the node's other processes join it with nsenter. The mounts exist
// only in that namespace: when its last process ends, they are gone, and the
// host's mount table never sees them.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, normalize } from 'node:path';

import { ManagedProcess } from '../../src/devenv/managed-process.js';
import type { NetworkNamespace } from '../ovs/netns.js';

/** The machine's directories each node has its own copy of (its "disk" and its runtime state). */
export const NODE_OWN_DIRS = ['/run', '/var/lib', '/var/log'] as const;

export interface NodeRoot {
  /** The host directory whose `run/`, `var/lib/`, `var/log/` the node sees as `/run`, `/var/lib`, `/var/log`. */
  dir: string;
  /** The holder of the mount namespace: stopped last, after every process that joined it. */
  process: ManagedProcess;
  /** Where a path of the node's view is on the host (`/var/lib/kubelet` → `<dir>/var/lib/kubelet`). */
  hostPath(nodePath: string): string;
  /** nsenter's arguments that put a command into the node's mount namespace and the given network namespace. */
  enter(netns: NetworkNamespace | string): string[];
}

/** Where the node's view puts `nodePath` on the host; a path outside NODE_OWN_DIRS is the machine's own. */
export function nodeHostPath(rootDir: string, nodePath: string): string {
  // Normalized first: `/var/lib/../../etc` is the machine's /etc, not the node's.
  const normal = normalize(nodePath);
  const path = normal === '/var/run' || normal.startsWith('/var/run/') ? normal.slice('/var'.length) : normal;
  const own = NODE_OWN_DIRS.some((d) => path === d || path.startsWith(`${d}/`));
  if (!own)
    throw new Error(`${nodePath} is not one of a lab node's own directories (${NODE_OWN_DIRS.join(', ')})`);
  return join(rootDir, path);
}

/**
 * Starts the holder of the node's mount namespace and waits until its mounts are
 * made. Then every mount of the namespace is made shared (new peer groups,
 * private to this node), as on a systemd machine: containerd refuses a volume
 * with `mountPropagation` whose source is not on a shared or slave mount, and it
 * finds that mount without following symlinks (`/var/run/kubevirt` is on `/`).
 */
export async function startNodeRoot(nodeDir: string): Promise<NodeRoot> {
  const dir = join(nodeDir, 'root');
  for (const own of NODE_OWN_DIRS) await mkdir(join(dir, own), { recursive: true });
  const ready = join(nodeDir, 'root.ready');
  const mounts = NODE_OWN_DIRS.map((own) => `mount --bind '${join(dir, own)}' '${own}'`).join(' && ');
  const process = new ManagedProcess(
    'node-root',
    'unshare',
    // --propagation private: nothing mounted in here reaches the host, nor the other way round.
    [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-ec',
      `${mounts} && mount --make-rshared / && touch '${ready}' && exec sleep infinity`,
    ],
    join(nodeDir, 'node-root.log'),
  );
  const deadline = Date.now() + 10_000;
  while (!existsSync(ready)) {
    if (!process.running) throw new Error(`the node's mount namespace failed:\n${await process.logTail()}`);
    if (Date.now() > deadline) {
      await process.stop();
      throw new Error(`the node's mount namespace was not ready in 10 s:\n${await process.logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    process,
    hostPath: (nodePath) => nodeHostPath(dir, nodePath),
    enter: (netns) => [
      `--mount=/proc/${process.pid}/ns/mnt`,
      `--net=${typeof netns === 'string' ? netns : `/run/netns/${netns.name}`}`,
      '--',
    ],
  };
}
