// The unix sockets of one live migration between two launcher pods. KubeVirt's
// virt-handlers proxy them between nodes (pkg/virt-handler/migration-proxy/):
// the source libvirtd reaches the target's libvirtd, and the source QEMU the
// target QEMU's incoming socket, through sockets in the source pod's
// /var/run/kubevirt/migrationproxy. The lab's nodes share one machine, so the
// proxy is a symlink: in the source pod, `migrationproxy/<key>-libvirt` leads
// to the target pod's virtqemud-sock and `migrationproxy/<key>` to the target
// pod's own `migrationproxy/<key>` directory, where the target QEMU listens.
// The same path then means the same socket inside both pods, which libvirt's
// unix migration URI needs (both QEMUs are given it).
import { chmod, mkdir, stat, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { run } from '../ovs/netns.js';
import { LAUNCHER_UID, type LauncherPod } from './launcher-pod.js';

const IN_POD = '/var/run/kubevirt/migrationproxy';

export class MigrationSockets {
  /** Short: it is part of socket paths inside the pods. */
  private readonly key: string;

  constructor(
    private readonly source: LauncherPod,
    private readonly target: LauncherPod,
  ) {
    this.key = target.uid.slice(0, 8);
  }

  /** What the source libvirtd connects to: the target's libvirtd (peer-to-peer). */
  get targetLibvirtUri(): string {
    return `qemu+unix:///session?socket=${IN_POD}/${this.key}-libvirt`;
  }

  /** Where the target QEMU listens and the source QEMU connects. */
  get migrationUri(): string {
    return `unix://${IN_POD}/${this.key}/migration.sock`;
  }

  async create(): Promise<void> {
    await allowTraversal(this.target.volume('libvirt-runtime'));
    const targetDir = join(this.target.volume('public'), 'migrationproxy', this.key);
    const sourceProxy = join(this.source.volume('public'), 'migrationproxy');
    await mkdir(targetDir, { recursive: true });
    await mkdir(sourceProxy, { recursive: true });
    await symlink(targetDir, join(sourceProxy, this.key));
    await symlink(
      join(this.target.volume('libvirt-runtime'), 'virtqemud-sock'),
      join(sourceProxy, `${this.key}-libvirt`),
    );
    const owner = `${LAUNCHER_UID}:${LAUNCHER_UID}`;
    await run('chown', [
      '-h',
      owner,
      join(this.target.volume('public'), 'migrationproxy'),
      targetDir,
      sourceProxy,
    ]);
  }
}

/**
 * The source pod's libvirtd and QEMU (uid 107) follow the symlinks through the target pod's host path:
 * every directory above it must let others through (x only, no listing). A lab dir from mkdtemp is 0700.
 */
async function allowTraversal(path: string): Promise<void> {
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001);
  }
}
