// Moves a process into the cgroups of a running container, as if it had been
// started inside it: what the stand-in does with a virt-launcher's libvirtd,
// so that the VM's QEMU (which inherits them) competes for the CPU with the
// weight of its pod's requests, as on a cluster, and not with a host process's
// full weight beside the agents' pods. cgroups v1, as on this machine: every
// hierarchy of /proc/<pid>/cgroup, each mounted at /sys/fs/cgroup/<controllers>.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** `hierarchy:controllers:path` lines of /proc/<pid>/cgroup, as the directory of each hierarchy. */
function cgroupDirs(procCgroup: string): string[] {
  return procCgroup
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [, controllers = '', path = ''] = line.split(':');
      // `name=systemd` is mounted as `systemd`; the v2 line (no controllers) as `unified`.
      const mount = controllers === '' ? 'unified' : controllers.replace(/^name=/, '');
      return join('/sys/fs/cgroup', mount, path);
    });
}

/** The cgroup lines of a process of the container `containerId` (its cgroup paths end in the ID). */
async function containerCgroup(containerId: string): Promise<string> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const text = await readFile(`/proc/${entry}/cgroup`, 'utf8').catch(() => '');
    if (text.split('\n').some((line) => line.endsWith(`/${containerId}`))) return text;
  }
  throw new Error(`no process of container ${containerId} is running`);
}

/** Puts `pid` into every cgroup of the container `containerId` (a containerd ID, without `containerd://`). */
export async function joinContainerCgroups(containerId: string, pid: number): Promise<void> {
  const failed: string[] = [];
  for (const dir of cgroupDirs(await containerCgroup(containerId))) {
    await writeFile(join(dir, 'cgroup.procs'), String(pid)).catch((error: unknown) =>
      failed.push(`${dir}: ${String(error)}`),
    );
  }
  if (failed.length > 0) {
    throw new Error(
      `could not move process ${pid} into container ${containerId}'s cgroups: ${failed.join('; ')}`,
    );
  }
}
