// The snapshot-host agent (`violin agent`, a real process) against real QEMU
// VMs running the bank on a real OVS bridge: a live capture while money moves
// (the VM keeps running; downtime reported), a restore into new QEMU processes
// from a consistent cut (the bank resumes and the total is conserved), a
// restore from an inconsistent cut (the checker catches it: the test can fail),
// and corrupt or missing images refused with the reason.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BankEndpoint, BankStatus } from '../../../lab/guest/checker.js';
import { checkBank, checkInvariant, quiesce, readStatus, setPaused } from '../../../lab/guest/checker.js';
import { stopLabVm } from '../../../lab/vm/lab-vm.js';
import { AgentClient } from '../../../src/agent/client.js';
import type { CaptureResult, VmRef } from '../../../src/agent/types.js';
import { VmDir } from '../../../src/agent/vm-dir.js';
import type { BankLab } from '../lab-vm/bank-lab.js';
import { startBankLab } from '../lab-vm/bank-lab.js';

const VM_A: VmRef = { namespace: 'default', name: 'vm-a' };
const VM_B: VmRef = { namespace: 'default', name: 'vm-b' };

async function waitUntil(what: string, condition: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

const channel = (s: BankStatus, peer: string, transport: 'tcp' | 'udp') =>
  s.channels.find((c) => c.peer === peer && c.transport === transport)!;

/** Starts `violin agent` and resolves with its URL from its "agent listening" log line. */
async function startAgent(
  stateDir: string,
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = spawn(
    process.execPath,
    [
      ...[
        'bin/violin.mjs',
        'agent',
        '--node',
        'lab-node-1',
        '--listen',
        '127.0.0.1:0',
        '--state-dir',
        stateDir,
      ],
      // Bundles beside the VMs; authentication has its own test (auth.test.ts).
      ...['--storage-root', `${stateDir}/bundles`, '--insecure-no-auth'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const url = /"url":"(http:\/\/[^"]+)"/.exec(output)?.[1];
    if (url) return { child, url, log: () => output };
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`violin agent did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('snapshot-host agent (QMP backend) on real QEMU', () => {
  let lab: BankLab;
  let agent: { child: ChildProcess; url: string; log: () => string };
  let client: AgentClient;
  let storageLocation: string;
  let endpoints: [BankEndpoint, BankEndpoint];
  let live: CaptureResult;

  beforeAll(async () => {
    lab = await startBankLab('h7agt', '10.72.0');
    endpoints = lab.endpoints as [BankEndpoint, BankEndpoint];
    storageLocation = `file://${lab.stateDir}/bundles`;
    agent = await startAgent(lab.stateDir);
    client = new AgentClient(agent.url);
    process.stderr.write(`[agent] lab up in ${lab.bootMs} ms; agent at ${agent.url}\n`);
  });
  afterAll(async () => {
    if (agent?.child.exitCode === null) {
      const exited = new Promise((resolve) => agent.child.once('exit', resolve));
      agent.child.kill('SIGTERM');
      await exited;
    }
    await lab?.stop();
  });

  it('captures a VM live while the bank runs: the VM keeps running and the image is what the digest says', async () => {
    const [a, b] = endpoints;
    await waitUntil('the banks trade', async () => (await readStatus(b, 30_000)).counters.received > 20);
    const pidBefore = await new VmDir(lab.stateDir, VM_A).runningPid();
    const sentBefore = (await readStatus(a)).counters.sent;

    live = await client.capture({ snapshotId: 'live-1', vm: VM_A, storageLocation });
    process.stderr.write(`[agent] live capture: ${JSON.stringify(live)}\n`);

    expect(live.image).toBe('images/default/vm-a.img');
    expect(live.downtimeMs).toBeGreaterThan(0);
    expect(Date.parse(live.completedAt)).toBeGreaterThan(Date.parse(live.startedAt));
    const file = await readFile(join(lab.stateDir, 'bundles', 'live-1', live.image));
    expect(file.byteLength).toBe(live.imageBytes);
    expect(live.digest).toBe(`sha256:${createHash('sha256').update(file).digest('hex')}`);
    // Same QEMU, still sending money: the capture did not stop the VM.
    expect(await new VmDir(lab.stateDir, VM_A).runningPid()).toBe(pidBefore);
    await waitUntil(
      'vm-a sends after the capture',
      async () => (await readStatus(a)).counters.sent > sentBefore + 10,
    );
  });

  it('a capture the store refuses fails with the store reason, leaves no image and the VM running', async () => {
    const [a] = endpoints;
    // A committed bundle is never written again.
    await mkdir(join(lab.stateDir, 'bundles', 'done-1'), { recursive: true });
    await writeFile(join(lab.stateDir, 'bundles', 'done-1', 'manifest.json'), '{}');
    const pidBefore = await new VmDir(lab.stateDir, VM_A).runningPid();
    await expect(client.capture({ snapshotId: 'done-1', vm: VM_A, storageLocation })).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/already committed/),
    });
    await expect(
      stat(join(lab.stateDir, 'bundles', 'done-1', 'images', 'default', 'vm-a.img')),
    ).rejects.toThrow(/ENOENT/);
    expect(await new VmDir(lab.stateDir, VM_A).runningPid()).toBe(pidBefore);
    const sent = (await readStatus(a)).counters.sent;
    await waitUntil('vm-a still trades', async () => (await readStatus(a)).counters.sent > sent + 10);
  });

  it('restores both VMs from a consistent cut into new QEMU processes: the bank resumes and conserves the total', async () => {
    // A cut with nothing in flight is consistent without any help from the network.
    const atCut = await quiesce(endpoints);
    expect(atCut.every((s) => s.channels.every((c) => c.unacked.length === 0))).toBe(true);
    const images = new Map<string, CaptureResult>();
    for (const vm of [VM_A, VM_B])
      images.set(vm.name, await client.capture({ snapshotId: 'cut-1', vm, storageLocation }));

    // The failure: both VMs die.
    for (const vm of lab.vms) await stopLabVm(vm.dir);

    const started = Date.now();
    const loads = [VM_A, VM_B].map((vm) => {
      const image = images.get(vm.name)!;
      return {
        restoreId: 'r-1',
        vm,
        storageLocation,
        snapshotId: 'cut-1',
        image: image.image,
        digest: image.digest,
      };
    });
    const answers = [];
    for (const load of loads) answers.push(await client.load(load));
    const loadedMs = Date.now() - started;
    // The same restore asking again (an operator that restarted before recording the answer): the same answer.
    expect(await client.load(loads[0]!)).toEqual(answers[0]);
    // Another restore may not take a loaded VM, nor unload it.
    await expect(client.load({ ...loads[0]!, restoreId: 'r-other' })).rejects.toMatchObject({
      code: 'Conflict',
    });
    expect(await client.unload('r-other', VM_A)).toEqual({ unloaded: false });
    const resumed = await Promise.all([VM_A, VM_B].map((vm) => client.resume('r-1', vm)));
    process.stderr.write(
      `[agent] restore of 2 VMs: loaded in ${loadedMs} ms, resumed at ${resumed.map((r) => r.resumedAt).join(', ')}\n`,
    );
    // Resume is idempotent, and a resumed VM is the restore's result: unloading leaves it running.
    await client.resume('r-1', VM_A);
    expect(await client.unload('r-1', VM_A)).toEqual({ unloaded: false });

    const restored = await Promise.all(endpoints.map((e) => readStatus(e, 30_000)));
    // The banks come back exactly as they were captured (still paused), then trade again.
    expect(restored.map((s) => s.balances)).toEqual(atCut.map((s) => s.balances));
    await setPaused(endpoints, false);
    await waitUntil('the restored banks trade again', async () => {
      const now = await Promise.all(endpoints.map((e) => readStatus(e)));
      return now.every((s, i) => s.counters.acked > restored[i]!.counters.acked + 20);
    });
    const report = await checkBank(endpoints);
    expect(report.violations).toEqual([]);
    expect(report).toMatchObject({ ok: true, total: 8000 });
  });

  it('a restore from an inconsistent cut is caught by the checker', async () => {
    const [a, b] = endpoints;
    const early = await client.capture({ snapshotId: 'torn-1', vm: VM_A, storageLocation });
    const issuedAtCapture = channel(await readStatus(a), 'b', 'tcp').nextSeq - 1;
    // b receives money a sends after its capture; a's image will not have sent it.
    await waitUntil(
      'b applied transfers a sent after its capture',
      async () => channel(await readStatus(b), 'a', 'tcp').appliedUpTo > issuedAtCapture + 5,
    );
    const dirA = lab.vms[0]!.dir;
    await stopLabVm(dirA);
    const load = {
      restoreId: 'r-2',
      vm: VM_A,
      storageLocation,
      snapshotId: 'torn-1',
      image: early.image,
      digest: early.digest,
    };
    // A failed restore unloads what it loaded: the paused QEMU is stopped, and the VM takes a new load.
    await client.load(load);
    expect(await client.unload('r-2', VM_A)).toEqual({ unloaded: true });
    await expect(client.resume('r-2', VM_A)).rejects.toMatchObject({ code: 'NotFound' });
    expect(await client.unload('r-2', VM_A)).toEqual({ unloaded: false });
    await client.load(load);
    await client.resume('r-2', VM_A);

    const report = checkInvariant(await Promise.all([readStatus(a, 30_000), readStatus(b)]));
    expect(report.ok).toBe(false);
    expect(report.violations.join('\n')).toMatch(
      /b applied a→b tcp transfer \d+, but a has issued only up to \d+/,
    );
  });

  it('refuses a corrupt, truncated or missing image with the reason and starts no QEMU', async () => {
    // A VM placed on the node but not running: the agent may load it.
    const ghost: VmRef = { namespace: 'default', name: 'vm-ghost' };
    const ghostDir = new VmDir(lab.stateDir, ghost);
    await ghostDir.writeSpec((await new VmDir(lab.stateDir, VM_A).readSpec())!);
    const imagePath = join(lab.stateDir, 'bundles', 'live-1', live.image);
    const bundleDir = join(lab.stateDir, 'bundles', 'bad-1', 'images', 'default');
    await mkdir(bundleDir, { recursive: true });

    const corrupt = join(bundleDir, 'vm-a.img');
    await copyFile(imagePath, corrupt);
    const bytes = await readFile(corrupt);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(corrupt, bytes);
    const load = {
      restoreId: 'r-3',
      vm: ghost,
      storageLocation,
      snapshotId: 'bad-1',
      image: live.image,
      digest: live.digest,
    };
    await expect(client.load(load)).rejects.toMatchObject({
      code: 'Integrity',
      message: expect.stringMatching(
        /images\/default\/vm-a\.img of bundle 'bad-1' .* is corrupt: .* digest to sha256:[0-9a-f]{64}, the snapshot recorded sha256:/,
      ),
    });

    await truncate(corrupt, 1000);
    await expect(client.load(load)).rejects.toMatchObject({
      code: 'Integrity',
      message: expect.stringMatching(/its 1000 bytes/),
    });

    await expect(client.load({ ...load, image: 'images/default/nothing.img' })).rejects.toMatchObject({
      code: 'Integrity',
      message: expect.stringMatching(/does not exist/),
    });
    expect(await ghostDir.runningPid()).toBeUndefined();

    // A VM that runs is never replaced by a load.
    await expect(client.load({ ...load, vm: VM_B, snapshotId: 'live-1' })).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/already runs/),
    });
  });

  it('an intact image that does not fit the VM is refused by QEMU, with its reason, and no QEMU is left behind', async () => {
    const misfit: VmRef = { namespace: 'default', name: 'vm-misfit' };
    const misfitDir = new VmDir(lab.stateDir, misfit);
    // Half the memory and no NIC: not the machine the image was taken from.
    const { nic: _nic, ...spec } = (await new VmDir(lab.stateDir, VM_A).readSpec())!;
    await misfitDir.writeSpec({ ...spec, memoryMiB: 64 });
    const load = {
      restoreId: 'r-4',
      vm: misfit,
      storageLocation,
      snapshotId: 'live-1',
      image: live.image,
      digest: live.digest,
    };
    await expect(client.load(load)).rejects.toMatchObject({
      code: 'Internal',
      message: expect.stringMatching(
        /loading default\/vm-misfit from images\/default\/vm-a\.img failed: .*QEMU said: (?!\(nothing\)).+/,
      ),
    });
    expect(await misfitDir.runningPid()).toBeUndefined();
  });
});
