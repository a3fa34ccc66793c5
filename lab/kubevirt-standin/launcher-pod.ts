// A virt-launcher pod on a lab node, as the stand-in's virt-launcher runs it
// on real libvirt: a pod with KubeVirt's emptyDir volumes under the node's
// kubelet pods dir (pkg/virt-controller/services/rendervolumes.go), made by
// the node's kubelet where the lab has one (launcher-pod-source.ts), and one
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
// The daemon runs in the network namespace of the node's Open vSwitch, where the
// VM's taps are. What is the stand-in's own (the pod's LauncherState, libvirtd's
// log, the domain XML) is kept in the node's state dir, `launchers/<podUID>`,
// never in the kubelet's pod dir, which a kubelet removes by its own rules.
// Its /etc/passwd and /etc/group (bind-mounted in its mount namespace only) name
// uid 107 `qemu`, as the launcher image does: libvirt looks the user up.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import {
  copyFile,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { isAlive } from '../../src/agent/qemu/launch.js';
import type { VmRef } from '../../src/agent/types.js';
import { VmDir } from '../../src/agent/vm-dir.js';
import type { GuestImage } from '../guest/image.js';
import { run } from '../ovs/netns.js';
import { domainName } from './domain-xml.js';
import type { LauncherPodNode, LauncherPodSource } from './launcher-pod-source.js';
import type { StandinNode } from './runtime.js';

/** The QEMU a launcher's domains run (inside the pod): the lab's wrapper when VIOLIN_QEMU is set, else QEMU itself. */
export function podEmulator(): string {
  return process.env.VIOLIN_QEMU ? '/usr/local/bin/qemu-system-x86_64' : '/usr/bin/qemu-system-x86_64';
}

/** KubeVirt's non-root launcher user (and group): `qemu`, 107. */
export const LAUNCHER_UID = 107;

/**
 * KubeVirt's emptyDir volumes of a launcher pod, and where its containers mount each
 * (virt-bin-share-dir: in its init containers only, at /init/usr/bin; libvirtd needs it nowhere).
 */
export const LAUNCHER_EMPTY_DIRS: readonly { volume: string; mountPath: string; libvirtd: boolean }[] = [
  { volume: 'private', mountPath: '/run/kubevirt-private', libvirtd: true },
  { volume: 'public', mountPath: '/run/kubevirt', libvirtd: true },
  { volume: 'sockets', mountPath: '/run/kubevirt/sockets', libvirtd: true },
  { volume: 'virt-bin-share-dir', mountPath: '/init/usr/bin', libvirtd: false },
  { volume: 'libvirt-runtime', mountPath: '/run/libvirt', libvirtd: true },
  { volume: 'ephemeral-disks', mountPath: '/run/kubevirt-ephemeral-disks', libvirtd: true },
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

/** The file (in the pod's own dir) where the stand-in keeps a pod's LauncherState; not part of KubeVirt's layout. */
const STATE_FILE = 'launcher.json';

/**
 * The kubelet pods dir of a lab node without a kubelet: `<nodeStateDir>/kubelet/pods` (on a cluster
 * node, /var/lib/kubelet/pods).
 */
export function podsDir(nodeStateDir: string): string {
  return join(nodeStateDir, 'kubelet', 'pods');
}

/** Where the stand-in keeps its own files of a node's launcher pods, one dir per pod UID. */
function launchersDir(node: LauncherPodNode): string {
  return join(node.stateDir, 'launchers');
}

export class LauncherPod {
  /** The pod's dir in the node's kubelet pods dir: its volumes. */
  readonly dir: string;
  /** The stand-in's own files of the pod (its LauncherState, libvirtd's log, domain XML). */
  readonly ownDir: string;

  constructor(
    readonly node: LauncherPodNode,
    readonly uid: string,
    private readonly source: LauncherPodSource,
  ) {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uid)) {
      throw new Error(`pod UID ${JSON.stringify(uid)} is not a UUID`);
    }
    this.dir = join(node.podsDir, uid);
    this.ownDir = join(launchersDir(node), uid);
  }

  /** The host path of one of the pod's emptyDir volumes. */
  volume(name: string): string {
    return join(this.dir, 'volumes', 'kubernetes.io~empty-dir', name);
  }

  /**
   * A new pod from `source` (a new UID each time, as for a migration target), and its libvirtd in the
   * node's OVS namespace; resolves once the daemon answers on virtqemud-sock.
   */
  static async start(
    node: StandinNode,
    source: LauncherPodSource,
    image: GuestImage,
    state: Omit<LauncherState, 'libvirtdPid' | 'paused'>,
  ): Promise<LauncherPod> {
    const pod = new LauncherPod(node, await source.create(node, state.vm, state.vmiUid), source);
    try {
      await mkdir(pod.ownDir, { recursive: true });
      for (const { volume } of LAUNCHER_EMPTY_DIRS) await mkdir(pod.volume(volume), { recursive: true });
      await mkdir(join(pod.volume('private'), state.vmiUid), { recursive: true });
      const kernelBoot = join(pod.volume('ephemeral-disks'), 'kernel-boot');
      await mkdir(kernelBoot, { recursive: true });
      await copyFile(image.kernel, join(kernelBoot, 'vmlinuz'));
      await copyFile(image.initrd, join(kernelBoot, 'initrd'));
      await run('chown', ['-R', `${LAUNCHER_UID}:${LAUNCHER_UID}`, join(pod.dir, 'volumes')]);
      const etc = join(pod.ownDir, 'etc');
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
      // The lab's QEMU wrapper (VIOLIN_QEMU), if any, is part of the pod's image: /usr/local/bin inside
      // the pod, read through the mount (uid 107 need not reach the repository's own path).
      const bin = join(pod.ownDir, 'bin');
      await mkdir(bin, { recursive: true });
      if (process.env.VIOLIN_QEMU) await copyFile(process.env.VIOLIN_QEMU, join(bin, 'qemu-system-x86_64'));
      const pid = pod.spawnLibvirtd(node.switch.netnsName, etc, bin);
      // Before it starts QEMU, which inherits where it runs: on a cluster, inside the pod.
      await source.adopt(node, pod.uid, pid);
      await pod.writeState({ ...state, paused: false, libvirtdPid: pid });
      await pod.waitForSocket(pid);
    } catch (error) {
      // A pod that did not start leaves nothing behind (its libvirtd, if it ran, is stopped by PID).
      await pod.delete().catch(() => undefined);
      throw error;
    }
    return pod;
  }

  private spawnLibvirtd(netns: string, etc: string, bin: string): number {
    const mounts = LAUNCHER_EMPTY_DIRS.filter((d) => d.libvirtd).map(
      (d) => `mkdir -p ${d.mountPath} && mount --bind "$1/${d.volume}" ${d.mountPath}`,
    );
    // A tmpfs on /run first: the pod sees its own /run (nothing of the host's), like a container.
    const script = [
      'set -eu',
      'mount -t tmpfs -o mode=0755 tmpfs /run',
      ...mounts,
      'mount --bind "$2/passwd" /etc/passwd',
      'mount --bind "$2/group" /etc/group',
      'mount --bind "$3" /usr/local/bin',
      `exec setpriv --reuid ${LAUNCHER_UID} --regid ${LAUNCHER_UID} --clear-groups env -i ` +
        'PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/var/run/kubevirt-private XDG_RUNTIME_DIR=/var/run ' +
        'XDG_CONFIG_HOME=/var/run/kubevirt-private XDG_CACHE_HOME=/var/run/kubevirt-private libvirtd',
    ].join('\n');
    const log = openSync(join(this.ownDir, 'libvirtd.log'), 'a');
    try {
      // ip netns exec, unshare, sh, setpriv and env all exec in place: the child's PID is libvirtd's.
      const child = spawn(
        'ip',
        [
          ...['netns', 'exec', netns, 'unshare', '--mount', '--propagation', 'private'],
          ...['sh', '-c', script, 'launcher', join(this.dir, 'volumes', 'kubernetes.io~empty-dir'), etc, bin],
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
    const log = await readFile(join(this.ownDir, 'libvirtd.log'), 'utf8').catch(() => '');
    throw new Error(
      `libvirtd of pod ${this.uid} did not answer: ${log.trim().split('\n').slice(-5).join(' | ')}`,
    );
  }

  async readState(): Promise<LauncherState | undefined> {
    try {
      return JSON.parse(await readFile(join(this.ownDir, STATE_FILE), 'utf8')) as LauncherState;
    } catch {
      return undefined;
    }
  }

  async writeState(state: LauncherState): Promise<void> {
    const temp = join(this.ownDir, `${STATE_FILE}.tmp`);
    await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`);
    await rename(temp, join(this.ownDir, STATE_FILE));
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

  /**
   * The lab's own convention, beside KubeVirt's layout: the node state dir's `vms/<ns>/<name>/serial.log`
   * (src/agent/vm-dir.ts) becomes a symlink to this pod's console log, so what reads consoles there (the
   * bank's heartbeat probe, the chaos checks) finds libvirt VMs too. No vm.json is written: the agent's
   * QEMU path does not take a launcher's VM for its own.
   */
  async linkConsole(): Promise<void> {
    const state = await this.readState();
    if (!state) return;
    const link = new VmDir(this.node.stateDir, state.vm).serialLog;
    await mkdir(dirname(link), { recursive: true });
    await rm(link, { force: true });
    await symlink(join(this.volume('private'), state.vmiUid, 'virt-serial0-log'), link);
  }

  /** Removes the console link if it leads into this pod. */
  async unlinkConsole(): Promise<void> {
    const state = await this.readState();
    if (!state) return;
    const link = new VmDir(this.node.stateDir, state.vm).serialLog;
    const target = await readlink(link).catch(() => '');
    if (target.startsWith(`${this.dir}/`)) await rm(link, { force: true });
  }

  async libvirtdRuns(): Promise<boolean> {
    const state = await this.readState();
    return state !== undefined && isAlive(state.libvirtdPid);
  }

  /**
   * The pod goes: its domain destroyed, its libvirtd and virtlogd stopped by PID, then the pod itself
   * (its source removes it, and with it its volumes) and the stand-in's files of it. Its taps are the
   * node's: the caller unplugs them.
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
    await this.source.remove(this.node, this.uid);
    await rm(this.ownDir, { recursive: true, force: true });
  }
}

/** Every launcher pod the stand-in started on a node (a stand-in that restarts finds its pods here). */
export async function launcherPods(node: LauncherPodNode, source: LauncherPodSource): Promise<LauncherPod[]> {
  const uids = await readdir(launchersDir(node)).catch(() => [] as string[]);
  return uids.flatMap((uid) => {
    try {
      return [new LauncherPod(node, uid, source)];
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
