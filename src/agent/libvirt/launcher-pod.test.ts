import { link, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPodUid, domainName, LauncherPods } from './launcher-pod.js';

const VM = { namespace: 'default', name: 'vm-a' };
const UID = '0b0f4a39-55b7-4e8d-9f6e-6c1ad2f8f3a1';

function runtimeDir(podsDir: string, uid: string): string {
  return join(podsDir, uid, 'volumes', 'kubernetes.io~empty-dir', 'libvirt-runtime');
}

describe('LauncherPods', () => {
  let base: string;
  let podsDir: string;
  const servers: Server[] = [];

  /** A socket at `path`: bound at a short path (sun_path has 108 bytes), hard-linked into the pod. */
  async function listen(path: string): Promise<void> {
    const server = createServer();
    servers.push(server);
    const short = join(base, `s${servers.length}`);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(short, resolve);
    });
    await link(short, path);
  }

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'vlp-'));
    podsDir = join(base, 'pods');
    await mkdir(runtimeDir(podsDir, UID), { recursive: true });
    await listen(join(runtimeDir(podsDir, UID), 'virtqemud-sock'));
  });
  afterAll(async () => {
    for (const server of servers) server.close();
    await rm(base, { recursive: true, force: true });
  });

  it("finds the VM's libvirt in its launcher pod's libvirt-runtime emptyDir, with KubeVirt's domain name", async () => {
    const domain = await new LauncherPods(podsDir).domainOf(VM, UID);
    expect(domain.domain).toBe('default_vm-a');
    expect(domain.podUid).toBe(UID);
    expect(domain.uri).toMatch(/^qemu\+unix:\/\/\/session\?socket=\//);
    expect((await new LauncherPods(podsDir, 'system').domainOf(VM, UID)).uri).toMatch(
      /^qemu\+unix:\/\/\/system\?/,
    );
  });

  it('accepts a symlink that stays inside the pod (virtqemud-sock -> libvirt/libvirt-sock)', async () => {
    const uid = 'a1b2c3d4-0000-4000-8000-000000000001';
    const runtime = runtimeDir(podsDir, uid);
    await mkdir(join(runtime, 'libvirt'), { recursive: true });
    await listen(join(runtime, 'libvirt', 'libvirt-sock'));
    await symlink('libvirt/libvirt-sock', join(runtime, 'virtqemud-sock'));
    await expect(new LauncherPods(podsDir).domainOf(VM, uid)).resolves.toMatchObject({ podUid: uid });
  });

  it('refuses a socket whose symlink leads out of the pod, even into another pod', async () => {
    const uid = 'a1b2c3d4-0000-4000-8000-000000000002';
    await mkdir(runtimeDir(podsDir, uid), { recursive: true });
    await symlink(
      join(runtimeDir(podsDir, UID), 'virtqemud-sock'),
      join(runtimeDir(podsDir, uid), 'virtqemud-sock'),
    );
    await expect(new LauncherPods(podsDir).domainOf(VM, uid)).rejects.toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/leads out of the pod/),
    });
  });

  it('refuses a pod directory that is itself a symlink out of --pods-dir', async () => {
    const uid = 'a1b2c3d4-0000-4000-8000-000000000003';
    const outside = join(base, 'outside');
    await mkdir(runtimeDir(outside, uid), { recursive: true });
    await listen(join(runtimeDir(outside, uid), 'virtqemud-sock'));
    await symlink(join(outside, uid), join(podsDir, uid));
    await expect(new LauncherPods(podsDir).domainOf(VM, uid)).rejects.toMatchObject({ code: 'BadRequest' });
  });

  it('NotFound for a pod with no libvirt socket on this node; NotFound for a file that is not a socket', async () => {
    await expect(
      new LauncherPods(podsDir).domainOf(VM, 'a1b2c3d4-0000-4000-8000-0000000000ff'),
    ).rejects.toMatchObject({
      code: 'NotFound',
      message: expect.stringMatching(/does not exist/),
    });
  });

  it.each([
    ['../../etc', 'a path'],
    ['0B0F4A39-55B7-4E8D-9F6E-6C1AD2F8F3A1', 'upper case'],
    ['0b0f4a39-55b7-4e8d-9f6e-6c1ad2f8f3a1/..', 'a suffix'],
    ['', 'empty'],
    [42, 'a number'],
    [undefined, 'missing'],
  ] as [unknown, string][])('refuses the pod UID %j (%s) before touching the file system', (uid) => {
    expect(() => checkPodUid(uid)).toThrow(/not a pod UID/);
  });

  it("names the domain as KubeVirt does: '<namespace>_<name>'", () => {
    expect(domainName({ namespace: 'bank', name: 'vm-1' })).toBe('bank_vm-1');
  });
});
