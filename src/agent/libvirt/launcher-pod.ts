// How the agent reaches a VM's libvirt the way virt-handler does: through the
// host's kubelet pods directory (host /var/lib/kubelet/pods, mounted at /pods in
// the agent's pod, as virt-handler mounts it; --pods-dir), the pod UID of the
// VM's virt-launcher (from vmi.status.activePods, sent by the operator as
// `launcherPodUid`), and the libvirt runtime emptyDir KubeVirt gives every
// launcher pod (volume `libvirt-runtime`, mounted at /var/run/libvirt:
// pkg/virt-controller/services/rendervolumes.go), where virtqemud listens on
// `virtqemud-sock`. The domain is `<namespace>_<name>`
// (pkg/virt-launcher/virtwrap/util/libvirt_helper.go).
//
// The pod UID comes from a request, so it is never joined unchecked: it must
// be a UUID, and the socket it leads to, symlinks resolved, must stay inside
// that pod's own directory under --pods-dir.
import { mkdtemp, realpath, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import type { VmRef } from '../types.js';
import { AgentError } from '../errors.js';
import { vmName } from '../vm-access.js';

/** KubeVirt's emptyDir for the launcher's libvirt runtime directory (/var/run/libvirt in the pod). */
export const LIBVIRT_RUNTIME_VOLUME = 'libvirt-runtime';
/** virtqemud's socket in that directory (virt-launcher's non-root mode). */
export const LIBVIRT_SOCKET = 'virtqemud-sock';

const POD_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// sun_path is 108 bytes on Linux, including the terminating NUL: why virt-handler mounts the pods at /pods.
const MAX_SOCKET_PATH = 107;

const URI_SAFE = /^[\w/.~-]+$/;

let shortLinks: Promise<string> | undefined;

/**
 * A path for `socket` that fits sun_path and a libvirt URI's query as it is
 * (no characters to escape): the socket itself, or a link to it in
 * a directory of the agent's own under the system's temp dir (mode 0700). A
 * socket path's length limit is on the string passed to connect(), and the
 * link names the resolved socket, so it cannot be redirected afterwards.
 */
async function connectablePath(socket: string, podUid: string): Promise<string> {
  if (socket.length <= MAX_SOCKET_PATH && URI_SAFE.test(socket)) return socket;
  shortLinks ??= mkdtemp(join(tmpdir(), 'violin-agent-'));
  const link = join(await shortLinks, podUid);
  await rm(link, { force: true });
  await symlink(socket, link);
  if (link.length > MAX_SOCKET_PATH)
    throw new Error(`the temp dir ${tmpdir()} is too deep for a ${MAX_SOCKET_PATH}-byte socket path`);
  return link;
}

/**
 * How the launcher's libvirt is addressed: `session` is virt-launcher's default
 * (non-root: `qemu+unix:///session?socket=...`), `system` its Root feature gate.
 */
export type LibvirtMode = 'session' | 'system';

/** One VM's libvirt, as the agent reaches it. */
export interface LibvirtDomain {
  vm: VmRef;
  podUid: string;
  /** The libvirt connection URI (virsh -c). */
  uri: string;
  /** The libvirt domain name. */
  domain: string;
}

export class LauncherPods {
  constructor(
    readonly podsDir: string,
    private readonly mode: LibvirtMode = 'session',
  ) {}

  /** The VM's libvirt in the launcher pod `podUid`; BadRequest for a malformed UID, NotFound when the socket is not there. */
  async domainOf(vm: VmRef, podUid: unknown): Promise<LibvirtDomain> {
    const uid = checkPodUid(podUid);
    const podDir = join(this.podsDir, uid);
    const socket = join(podDir, 'volumes', 'kubernetes.io~empty-dir', LIBVIRT_RUNTIME_VOLUME, LIBVIRT_SOCKET);
    let realPod: string;
    let realSocket: string;
    try {
      realPod = await realpath(podDir);
      realSocket = await realpath(socket);
    } catch {
      throw new AgentError(
        'NotFound',
        `no libvirt of ${vmName(vm)} in launcher pod ${uid} on this node: ${socket} does not exist ` +
          `(is the pod on this node, and is the agent's --pods-dir the host's kubelet pods directory?)`,
      );
    }
    const realRoot = await realpath(this.podsDir);
    // A symlink (the pod's own, e.g. virtqemud-sock -> libvirt/libvirt-sock) may point inside the pod, never out of it.
    if (realPod !== join(realRoot, uid) || !realSocket.startsWith(realPod + sep)) {
      throw new AgentError(
        'BadRequest',
        `launcher pod ${uid}: ${socket} leads out of the pod's directory (to ${realSocket}); refused`,
      );
    }
    if (!(await stat(realSocket)).isSocket())
      throw new AgentError('NotFound', `launcher pod ${uid}: ${realSocket} is not a socket`);
    return {
      vm,
      podUid: uid,
      uri: `qemu+unix:///${this.mode}?socket=${await connectablePath(realSocket, uid)}`,
      domain: domainName(vm),
    };
  }
}

/** KubeVirt's libvirt domain name for a VMI. */
export function domainName(vm: VmRef): string {
  return `${vm.namespace}_${vm.name}`;
}

export function checkPodUid(value: unknown): string {
  if (typeof value !== 'string' || !POD_UID.test(value)) {
    throw new AgentError(
      'BadRequest',
      `launcherPodUid ${JSON.stringify(value)} is not a pod UID (lower-case UUID, as in vmi.status.activePods)`,
    );
  }
  return value;
}
