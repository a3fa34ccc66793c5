// A virt-launcher "pod" on a lab node, as the stand-in's virt-launcher runs it
// on real libvirt: a fresh pod UID, KubeVirt's emptyDir volumes under the
// node's kubelet root (pkg/virt-controller/services/rendervolumes.go), and one
// libvirtd for the VM, as KubeVirt's qemu user (uid 107), in a mount namespace
// where those emptyDirs sit where the launcher container has them:
//
//   <kubelet>/pods/<podUID>/volumes/kubernetes.io~empty-dir/
//     libvirt-runtime/   → /var/run/libvirt           (libvirt-sock, and virtqemud-sock → libvirt-sock)
//     public/            → /var/run/kubevirt
//     sockets/           → /var/run/kubevirt/sockets
//     private/           → /var/run/kubevirt-private  (XDG_CONFIG_HOME, XDG_CACHE_HOME; <vmi uid>/virt-serial0-log)
//     ephemeral-disks/   → /var/run/kubevirt-ephemeral-disks (kernel-boot/: the guest's kernel and initrd)
//     virt-bin-share-dir/
//
// Debian 12's libvirt 9.0 has no virtqemud: the monolithic libvirtd runs in
// session mode instead (XDG_RUNTIME_DIR=/var/run, XDG_CONFIG_HOME and
// XDG_CACHE_HOME=/var/run/kubevirt-private, as virt-controller sets them for the
// launcher container), so its socket is /var/run/libvirt/libvirt-sock; a
// relative symlink gives it KubeVirt's name, virtqemud-sock, seen the same from
// inside the pod and from the host. Clients on the host connect the way
// virt-handler does, through the launcher's root: /proc/<pid>/root/var/run/...
// (the host path of the emptyDir is longer than a unix socket path may be).
//
// The daemon runs in the lab's OVS network namespace, where the VM's taps are.
// Its /etc/passwd and /etc/group (bind-mounted in its mount namespace only) name
// uid 107 `qemu`, as the launcher image does: libvirt looks the user up.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { isAlive } from '../../src/agent/qemu/launch.js';
import type { VmRef } from '../../src/agent/types.js';
import type { GuestImage } from '../guest/image.js';
import { run } from '../ovs/netns.js';
import { domainName } from './domain-xml.js';

/** KubeVirt's non-root launcher user (and group): `qemu`, 107. */
export const LAUNCHER_UID = 107;

/** KubeVirt's emptyDir volumes of a launcher pod, and where the launcher container mounts each. */
const EMPTY_DIRS: readonly { volume: string; mountPath?: string }[] = [
  { volume: 'private', mountPath: '/run/kubevirt-private' },
  { volume: 'public', mountPath: '/run/kubevirt' },
  { volume: 'sockets', mountPath: '/run/kubevirt/sockets' },
  { volume: 'virt-bin-share-dir' },
  { volume: 'libvirt-runtime', mountPath: '/run/libvirt' },
  { volume: 'ephemeral-disks', mountPath: '/run/kubevirt-ephemeral-disks' },
];

export interface LauncherInterface {
  /** spec.domain.devices.interfaces[].name */
  name: string;
  mac: string;
  podInterfaceName: string;
  tap: string;
}

/** The pod's own state, kept beside its volumes: what virt-launcher holds in memory (the `paused` set among it). */
export interface LauncherState {
  vm: VmRef;
  vmiUid: string;
  /** The VM's interfaces: each one's tap in the OVS namespace, MAC and name in the pod. */
  interfaces: LauncherInterface[];
  /** In virt-launcher's `paused` set: paused through the pause subresource or startStrategy Paused. */
  paused: boolean;
  libvirtdPid: number;
}

/** The file (beside volumes/) where the stand-in keeps a pod's LauncherState; not part of KubeVirt's layout. */
const STATE_FILE = 'violin-standin-launcher.json';

/** The kubelet pods dir of a lab node: `<nodeStateDir>/kubelet/pods` (on a cluster node, /var/lib/kubelet/pods). */
export function podsDir(nodeStateDir: string): string {
  return join(nodeStateDir, 'kubelet', 'pods');
}

export class LauncherPod {
  readonly dir: string;

  constructor(
    nodeStateDir: string,
    readonly uid: string,
  ) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uid)) {
      throw new Error(`pod UID ${JSON.stringify(uid)} is not a UUID`);
    }
    this.dir = join(podsDir(nodeStateDir), uid);
  }

  /** The host path of one of the pod's emptyDir volumes. */
  volume(name: string): string {
    return join(this.dir, 'volumes', 'kubernetes.io~empty-dir', name);
  }

  /**
   * Creates the pod's layout and starts its libvirtd in the OVS namespace `netns`; resolves once the
   * daemon answers on virtqemud-sock. The pod has a new UID each time (a new pod, as for a migration target).
   */
  static async start(
    nodeStateDir: string,
    netns: string,
    image: GuestImage,
    state: Omit<LauncherState, 'libvirtdPid' | 'paused'>,
  ): Promise<LauncherPod> {
    const pod = new LauncherPod(nodeStateDir, randomUUID());
    try {
      for (const { volume } of EMPTY_DIRS) await mkdir(pod.volume(volume), { recursive: true });
      await mkdir(join(pod.volume('private'), state.vmiUid), { recursive: true });
      const kernelBoot = join(pod.volume('ephemeral-disks'), 'kernel-boot');
      await mkdir(kernelBoot, { recursive: true });
      await copyFile(image.kernel, join(kernelBoot, 'vmlinuz'));
      await copyFile(image.initrd, join(kernelBoot, 'initrd'));
      await run('chown', ['-R', `${LAUNCHER_UID}:${LAUNCHER_UID}`, join(pod.dir, 'volumes')]);
      const etc = join(pod.dir, 'etc');
      await mkdir(etc, { recursive: true });
      const passwd = await readFile('/etc/passwd', 'utf8');
      const group = await readFile('/etc/group', 'utf8');
      await writeFile(
        join(etc, 'passwd'),
        `${withoutId(passwd, LAUNCHER_UID, 2)}qemu:x:${LAUNCHER_UID}:${LAUNCHER_UID}:qemu:/var/run/kubevirt-private:/sbin/nologin\n`,
      );
      await writeFile(join(etc, 'group'), `${withoutId(group, LAUNCHER_UID, 2)}qemu:x:${LAUNCHER_UID}:\n`);
      // KubeVirt's socket name, before the daemon makes its own socket: relative, so it resolves from the host too.
      await symlink('libvirt-sock', join(pod.volume('libvirt-runtime'), 'virtqemud-sock'));
      const pid = pod.spawnLibvirtd(netns, etc);
      await pod.writeState({ ...state, paused: false, libvirtdPid: pid });
      await pod.waitForSocket(pid);
    } catch (error) {
      // A pod that did not start leaves nothing behind (its libvirtd, if it ran, is stopped by PID).
      await pod.delete().catch(() => undefined);
      throw error;
    }
    return pod;
  }

  private spawnLibvirtd(netns: string, etc: string): number {
    const mounts = EMPTY_DIRS.filter((d) => d.mountPath).map(
      (d) => `mkdir -p ${d.mountPath} && mount --bind "$1/${d.volume}" ${d.mountPath}`,
    );
    // A tmpfs on /run first: the pod sees its own /run (nothing of the host's), like a container.
    const script = [
      'set -eu',
      'mount -t tmpfs -o mode=0755 tmpfs /run',
      ...mounts,
      'mount --bind "$2/passwd" /etc/passwd',
      'mount --bind "$2/group" /etc/group',
      `exec setpriv --reuid ${LAUNCHER_UID} --regid ${LAUNCHER_UID} --clear-groups env -i ` +
        'PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/run/kubevirt-private XDG_RUNTIME_DIR=/var/run ' +
        'XDG_CONFIG_HOME=/var/run/kubevirt-private XDG_CACHE_HOME=/var/run/kubevirt-private libvirtd',
    ].join('\n');
    const log = openSync(join(this.dir, 'libvirtd.log'), 'a');
    try {
      // ip netns exec, unshare, sh, setpriv and env all exec in place: the child's PID is libvirtd's.
      const child = spawn(
        'ip',
        [
          ...['netns', 'exec', netns, 'unshare', '--mount', '--propagation', 'private'],
          ...['sh', '-c', script, 'launcher', join(this.dir, 'volumes', 'kubernetes.io~empty-dir'), etc],
        ],
        { detached: true, stdio: ['ignore', log, log] },
      );
      child.unref();
      if (child.pid === undefined) throw new Error('could not start libvirtd');
      return child.pid;
    } finally {
      closeSync(log);
    }
  }

  private async waitForSocket(pid: number): Promise<void> {
    for (let attempt = 0; attempt < 300; attempt++) {
      if (!isAlive(pid)) break;
      if (
        await this.virsh(['version']).then(
          () => true,
          () => false,
        )
      )
        return;
      await sleep(100);
    }
    const log = await readFile(join(this.dir, 'libvirtd.log'), 'utf8').catch(() => '');
    throw new Error(
      `libvirtd of pod ${this.uid} did not answer: ${log.trim().split('\n').slice(-5).join(' | ')}`,
    );
  }

  async readState(): Promise<LauncherState | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, STATE_FILE), 'utf8')) as LauncherState;
    } catch {
      return undefined;
    }
  }

  async writeState(state: LauncherState): Promise<void> {
    const temp = join(this.dir, `${STATE_FILE}.tmp`);
    await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`);
    await rename(temp, join(this.dir, STATE_FILE));
  }

  /**
   * The libvirt URI a host process uses, through the launcher's root as virt-handler does. /run, not
   * /var/run: the host's /var/run is an absolute symlink, which would resolve to the host's own /run.
   */
  async uri(): Promise<string> {
    const state = await this.readState();
    if (!state) throw new Error(`pod ${this.uid} has no launcher`);
    return `qemu+unix:///session?socket=/proc/${state.libvirtdPid}/root/run/libvirt/virtqemud-sock`;
  }

  async virsh(args: readonly string[]): Promise<string> {
    const { stdout } = await run('virsh', ['-q', '-c', await this.uri(), ...args]);
    return stdout.trim();
  }

  async domain(): Promise<string> {
    const state = await this.readState();
    if (!state) throw new Error(`pod ${this.uid} has no launcher`);
    return domainName(state.vm.namespace, state.vm.name);
  }

  /** The PID of the domain's QEMU while it runs (libvirt's pid file in the pod's runtime dir). */
  async qemuPid(): Promise<number | undefined> {
    if (!(await this.readState())) return undefined;
    const pid = await readPid(
      join(this.volume('libvirt-runtime'), 'qemu', 'run', `${await this.domain()}.pid`),
    );
    return pid !== undefined && isAlive(pid) ? pid : undefined;
  }

  async libvirtdRuns(): Promise<boolean> {
    const state = await this.readState();
    return state !== undefined && isAlive(state.libvirtdPid);
  }

  /**
   * The pod goes (as the kubelet deletes it): its domain destroyed, its libvirtd and virtlogd stopped by
   * PID, its directory removed. Its taps are the node's: the caller unplugs them.
   */
  async delete(): Promise<void> {
    const state = await this.readState();
    const runtime = this.volume('libvirt-runtime');
    const qemuPid = await this.qemuPid();
    if (state && isAlive(state.libvirtdPid)) {
      await this.virsh(['destroy', await this.domain()]).catch(() => undefined);
    }
    for (const pid of [qemuPid, state?.libvirtdPid, await readPid(join(runtime, 'virtlogd.pid'))]) {
      if (pid !== undefined) await stopPid(pid);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Every launcher pod on a node (a stand-in that restarts finds its pods here). */
export async function launcherPods(nodeStateDir: string): Promise<LauncherPod[]> {
  const uids = await readdir(podsDir(nodeStateDir)).catch(() => [] as string[]);
  return uids.flatMap((uid) => {
    try {
      return [new LauncherPod(nodeStateDir, uid)];
    } catch {
      return [];
    }
  });
}

async function readPid(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

async function stopPid(pid: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
}

/** passwd/group text without the entry whose id field (index `field`) is `id`, ending in a newline. */
function withoutId(text: string, id: number, field: number): string {
  const lines = text.split('\n').filter((l) => l !== '' && l.split(':')[field] !== String(id));
  return `${lines.join('\n')}\n`;
}
