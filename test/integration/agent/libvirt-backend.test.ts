// The agent's libvirt backend (`violin agent --pods-dir`, a real process)
// against real libvirtd and QEMU in KubeVirt's layout (libvirt-pod.ts): a live
// capture held at T_i by a pause the way KubeVirt pauses (virDomainSuspend, as
// virt-launcher's PauseVMI does), finished after the pause with the domain
// left paused; then a load into a new launcher pod's domain started paused
// (startStrategy: Paused), left paused, and, once unpaused, a guest that runs
// on with the memory it had at capture. Bad input is refused with the reason.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaptureResult, VmRef } from '../../../src/agent/types.js';
import { MANIFEST_FILE } from '../../../src/store/layout.js';
import type { AgentProcess } from './agent-process.js';
import { startAgentProcess } from './agent-process.js';
import type { LauncherPod } from './libvirt-pod.js';
import { guestFiles, requireLibvirtTools, startLauncherPod, waitForShell } from './libvirt-pod.js';

const VM: VmRef = { namespace: 'default', name: 'vm-a' };
const FIRMWARE_UUID = '5e3b1a52-0c1e-4b57-9a1c-1f2f3e4d5c6b';

async function domstate(pod: LauncherPod): Promise<string> {
  return (await pod.virsh('domstate', '--reason', pod.domain)).trim();
}

async function counter(pod: LauncherPod): Promise<number> {
  return Number((await pod.shell('cat /tmp/count')).trim());
}

/** QEMU's own migration status, asked through libvirt past the agent. */
async function migrationStatus(pod: LauncherPod): Promise<string> {
  const reply = await pod.virsh('qemu-monitor-command', pod.domain, '{"execute":"query-migrate"}');
  return (JSON.parse(reply) as { return: { status?: string } }).return.status ?? 'none';
}

describe('snapshot-host agent, libvirt backend, on real libvirtd and QEMU', () => {
  let base: string;
  let podsDir: string;
  let guest: { kernel: string; initrd: string };
  let agent: AgentProcess;
  let storageLocation: string;
  const pods: LauncherPod[] = [];
  const mark = randomBytes(8).toString('hex');
  let source: LauncherPod;
  let captured: CaptureResult;
  let countBeforePause = 0;

  // The storage location below is the agent's storage root (it refuses any other).
  const storageRootArgs = (): string[] => ['--storage-root', join(base, 'bundles')];

  beforeAll(async () => {
    requireLibvirtTools();
    base = await mkdtemp(join(tmpdir(), 'vt-lv-'));
    // The pods' libvirtd runs unprivileged and must reach its pod's directories.
    await chmod(base, 0o755);
    podsDir = join(base, 'pods');
    await mkdir(podsDir, { mode: 0o755 });
    await mkdir(join(base, 'guest'), { mode: 0o755 });
    guest = await guestFiles(join(base, 'guest'));
    storageLocation = `file://${base}/bundles`;
    source = await startLauncherPod({ podsDir, vm: VM, guest, paused: false, firmwareUuid: FIRMWARE_UUID });
    pods.push(source);
    agent = await startAgentProcess(join(base, 'agent'), ['--pods-dir', podsDir, ...storageRootArgs()]);
    await waitForShell(source);
    await source.shell(
      `mount -t devtmpfs dev /dev; mount -t proc proc /proc; echo ${mark} > /tmp/mark; ` +
        `(i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done) & true`,
    );
  }, 180_000);

  afterAll(async () => {
    if (process.env.VIOLIN_TEST_LOGS) process.stderr.write(`[agent-libvirt] agent log:\n${agent?.log()}\n`);
    await agent?.stop('SIGTERM');
    for (const pod of pods) await pod.stop().catch(() => undefined);
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('captures live through libvirt, held by the pause: Converged while the guest runs, the image at the pause', async () => {
    const snapshotId = 'lv-1';
    const req = {
      snapshotId,
      vm: VM,
      storageLocation,
      launcherPodUid: source.uid,
      hold: 'KubeVirtPause' as const,
    };
    const converged = await agent.client.startHeldCapture(req);
    expect(converged.state).toBe('Converged');
    // The guest still runs: libvirt says so, and its counter moves.
    expect(await domstate(source)).toMatch(/^running/);
    const count = await counter(source);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await counter(source)).toBeGreaterThan(count);
    // Idempotent: asked again, the same answer.
    expect(await agent.client.startHeldCapture(req)).toEqual(converged);
    // Not finished before KubeVirt's pause.
    await expect(
      agent.client.finishCapture({ snapshotId, vm: VM, launcherPodUid: source.uid }),
    ).rejects.toMatchObject({ code: 'Conflict', message: expect.stringMatching(/not paused/) });

    countBeforePause = await counter(source);
    // What virt-launcher's PauseVMI does for the pause subresource: virDomainSuspend.
    const pausedAt = Date.now();
    await source.virsh('suspend', source.domain);
    captured = await agent.client.finishCapture({ snapshotId, vm: VM, launcherPodUid: source.uid });
    process.stderr.write(`[agent-libvirt] held capture: ${JSON.stringify(captured)}\n`);
    expect(captured.image).toBe('images/default/vm-a.img');
    // T_i is the pause, as QEMU stamped its STOP.
    expect(Math.abs(Date.parse(captured.completedAt) - pausedAt)).toBeLessThan(2000);
    expect(Date.parse(captured.completedAt)).toBeGreaterThan(Date.parse(converged.startedAt));
    const file = await readFile(join(base, 'bundles', snapshotId, captured.image));
    expect(file.byteLength).toBe(captured.imageBytes);
    expect(captured.digest).toBe(`sha256:${createHash('sha256').update(file).digest('hex')}`);
    // The agent never resumes: KubeVirt's pause owns the hold.
    expect(await domstate(source)).toMatch(/^paused/);
    expect(await agent.client.finishCapture({ snapshotId, vm: VM, launcherPodUid: source.uid })).toEqual(
      captured,
    );
    // KubeVirt's unpause (virDomainResume): the source runs on.
    await source.virsh('resume', source.domain);
    const after = await counter(source);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await counter(source)).toBeGreaterThan(after);
  }, 120_000);

  it('loads the image into a paused domain of a new launcher pod, leaves it paused, and the guest runs on with its memory', async () => {
    // The VM is deleted and created again by the operator with startStrategy: Paused: a new pod.
    await source.stop();
    const target = await startLauncherPod({
      podsDir,
      vm: VM,
      guest,
      paused: true,
      firmwareUuid: FIRMWARE_UUID,
    });
    pods.push(target);
    const req = {
      restoreId: 'rs-1',
      vm: VM,
      storageLocation,
      snapshotId: 'lv-1',
      image: captured.image,
      digest: captured.digest,
      launcherPodUid: target.uid,
    };
    const { loadedAt } = await agent.client.load(req);
    expect(Date.parse(loadedAt)).toBeGreaterThan(0);
    expect(await domstate(target)).toMatch(/^paused/);
    expect(await agent.client.load(req)).toEqual({ loadedAt });
    // The operator unpauses through KubeVirt.
    await target.virsh('resume', target.domain);
    // A fresh boot has neither the mark nor a counter; the restored guest has both, and counts on.
    expect((await target.shell('cat /tmp/mark')).trim()).toBe(mark);
    const first = await counter(target);
    expect(first).toBeGreaterThanOrEqual(countBeforePause);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await counter(target)).toBeGreaterThan(first);
  }, 180_000);

  it('refuses a corrupt image, a malformed pod UID, a pod of another node and a socket that leads out of its pod', async () => {
    const target = pods.at(-1)!;
    await expect(
      agent.client.load({
        restoreId: 'rs-2',
        vm: VM,
        storageLocation,
        snapshotId: 'lv-1',
        image: captured.image,
        digest: `sha256:${'0'.repeat(64)}`,
        launcherPodUid: target.uid,
      }),
    ).rejects.toMatchObject({ code: 'Integrity' });
    const capture = (launcherPodUid: string) =>
      agent.client.startHeldCapture({
        snapshotId: 'lv-2',
        vm: VM,
        storageLocation,
        launcherPodUid,
        hold: 'KubeVirtPause',
      });
    await expect(capture('../../etc')).rejects.toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/not a pod UID/),
    });
    await expect(capture(randomUUID())).rejects.toMatchObject({ code: 'NotFound' });
    const escaping = randomUUID();
    const runtime = join(podsDir, escaping, 'volumes', 'kubernetes.io~empty-dir', 'libvirt-runtime');
    await mkdir(runtime, { recursive: true });
    await symlink(join(target.consoleSocket), join(runtime, 'virtqemud-sock'));
    await expect(capture(escaping)).rejects.toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/leads out/),
    });
    // The VM ran on through all of it.
    expect(await domstate(target)).toMatch(/^running/);
  }, 60_000);

  it('an agent killed while it holds a capture: QEMU fails the migration, the guest runs on, and the next agent answers finish with NotFound', async () => {
    const target = pods.at(-1)!;
    const req = {
      snapshotId: 'lv-3',
      vm: VM,
      storageLocation,
      launcherPodUid: target.uid,
      hold: 'KubeVirtPause' as const,
    };
    expect(await agent.client.startHeldCapture(req)).toMatchObject({ state: 'Converged' });
    await agent.stop('SIGKILL');
    // The pipe's reader died with the agent: QEMU's write fails and so does its migration.
    const status = () => migrationStatus(target);
    const deadline = Date.now() + 30_000;
    while ((await status()) !== 'failed' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect(await status()).toBe('failed');
    expect(await domstate(target)).toMatch(/^running/);
    const count = await counter(target);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await counter(target)).toBeGreaterThan(count);
    agent = await startAgentProcess(join(base, 'agent'), ['--pods-dir', podsDir, ...storageRootArgs()]);
    await expect(
      agent.client.finishCapture({ snapshotId: 'lv-3', vm: VM, launcherPodUid: target.uid }),
    ).rejects.toMatchObject({ code: 'NotFound' });
    // A new capture of the same VM works.
    expect(await agent.client.startHeldCapture(req)).toMatchObject({ state: 'Converged' });
    await agent.client.discard('lv-3', VM, storageLocation);
    expect(await domstate(target)).toMatch(/^running/);
  }, 120_000);

  it("a capture the store refuses fails within seconds with the store's reason, QEMU's migration ended and the guest running", async () => {
    const target = pods.at(-1)!;
    const capture = (snapshotId: string, location: string) =>
      agent.client.startHeldCapture({
        snapshotId,
        vm: VM,
        storageLocation: location,
        launcherPodUid: target.uid,
        hold: 'KubeVirtPause',
      });
    // Outside the storage root: refused before QEMU is touched.
    let started = Date.now();
    await expect(capture('lv-4', `file://${base}/elsewhere`)).rejects.toMatchObject({
      code: 'BadRequest',
      message: expect.stringMatching(/outside the root/),
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await migrationStatus(target)).not.toMatch(/^(setup|active|cancelling)$/);

    // A bundle already committed: the store refuses only when the image is written, with QEMU migrating.
    await mkdir(join(base, 'bundles', 'lv-5'), { recursive: true });
    await writeFile(join(base, 'bundles', 'lv-5', MANIFEST_FILE), '{}');
    started = Date.now();
    await expect(capture('lv-5', storageLocation)).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/storing the capture of VM default\/vm-a failed: .*already committed/),
    });
    expect(Date.now() - started).toBeLessThan(15_000);
    // No migration left under way, and the guest runs on.
    const deadline = Date.now() + 10_000;
    while (/^(setup|active|cancelling)$/.test(await migrationStatus(target)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect(await migrationStatus(target)).toMatch(/^(cancelled|failed|none)$/);
    expect(await domstate(target)).toMatch(/^running/);
    const count = await counter(target);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await counter(target)).toBeGreaterThan(count);
    // The capture is over: nothing to finish, and a capture to a location the store accepts works.
    await expect(
      agent.client.finishCapture({ snapshotId: 'lv-5', vm: VM, launcherPodUid: target.uid }),
    ).rejects.toMatchObject({ code: 'NotFound' });
    await expect(capture('lv-6', storageLocation)).resolves.toMatchObject({ state: 'Converged' });
    await agent.client.discard('lv-6', VM, storageLocation);
    expect(await domstate(target)).toMatch(/^running/);
  }, 120_000);
});
