// What a restarted agent does with each record a dead one left
// (recoverCaptures), against a scripted QEMU on the VM's QMP socket: every
// capture phase, a record whose QEMU is gone, one that is not a record, a QEMU
// that answers only later, and a load cut short; and how a capture request
// repeated by a restarted operator is answered (from a held record, or by
// joining the capture under way).
// test/integration/agent/agent-crash.test.ts does the same with real QEMU and a
// SIGKILLed `violin agent`, for the phases a test can stop it in.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CaptureRecord } from './capture-record.js';
import { writeCaptureRecord } from './capture-record.js';
import { bundleImageStore } from './image-store.js';
import { QmpSnapshotAgent } from './qmp-agent.js';
import type { VmRef } from './types.js';
import { VmDir } from './vm-dir.js';

const VM: VmRef = { namespace: 'default', name: 'vm-a' };
/** No such process: PIDs never get this large on Linux (pid_max ≤ 2^22). */
const DEAD_PID = 2 ** 30;

/** Answers QMP like QEMU for what recovery asks: run state, migration, migrate_cancel, cont. */
class ScriptedQemu {
  commands: string[] = [];
  private readonly peers = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    public status: string,
    public migration: string | undefined,
  ) {}

  static async start(socketPath: string, status: string, migration?: string): Promise<ScriptedQemu> {
    const server = createServer();
    const qemu = new ScriptedQemu(server, status, migration);
    server.on('connection', (peer) => qemu.serve(peer));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    return qemu;
  }

  private serve(peer: Socket): void {
    this.peers.add(peer);
    peer.on('close', () => this.peers.delete(peer));
    peer.on('error', () => undefined);
    const send = (message: unknown) => peer.write(`${JSON.stringify(message)}\r\n`);
    send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, capabilities: [] } });
    let buffer = '';
    peer.on('data', (chunk) => {
      buffer += chunk.toString();
      for (let newline; (newline = buffer.indexOf('\n')) >= 0;) {
        const { execute, id } = JSON.parse(buffer.slice(0, newline)) as { execute: string; id: string };
        buffer = buffer.slice(newline + 1);
        if (execute !== 'qmp_capabilities') this.commands.push(execute);
        if (execute === 'query-status') send({ return: { status: this.status }, id });
        else if (execute === 'query-migrate')
          send({ return: this.migration ? { status: this.migration } : {}, id });
        else if (execute === 'migrate_cancel') {
          this.migration = 'cancelled';
          send({ return: {}, id });
        } else if (execute === 'cont') {
          this.status = 'running';
          send({ return: {}, id });
          const now = Date.now();
          send({
            event: 'RESUME',
            data: {},
            timestamp: { seconds: Math.floor(now / 1000), microseconds: (now % 1000) * 1000 },
          });
        } else send({ return: {}, id });
      }
    });
  }

  async stop(): Promise<void> {
    for (const peer of this.peers) peer.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// Every test gets a fresh state dir with one VM folder and an agent over it.
let stateDir: string;
let dir: VmDir;
let qemu: ScriptedQemu | undefined;
let agent: QmpSnapshotAgent;
let logged: string[];
let discarded: string[];

const base = (): CaptureRecord => ({
  phase: 'copying',
  snapshotId: 'snap-1',
  storageLocation: `file://${stateDir}/bundles`,
  qemuPid: process.pid,
  startedAt: new Date(Date.now() - 5000).toISOString(),
});
const held = (deadlineInMs: number): CaptureRecord => ({
  ...base(),
  phase: 'held',
  held: {
    stoppedAtMs: Date.now() - 3000,
    completedAt: new Date(Date.now() - 2000).toISOString(),
    deadlineAt: new Date(Date.now() + deadlineInMs).toISOString(),
    deadlineMs: 4000,
    result: {
      startedAt: new Date(Date.now() - 5000).toISOString(),
      completedAt: new Date(Date.now() - 2000).toISOString(),
      downtimeMs: 1000,
      imageBytes: 4096,
      digest: 'sha256:00',
      image: 'vms/default/vm-a.img',
      paused: true,
    },
  },
});
const record = async () =>
  JSON.parse(await readFile(dir.captureRecord, 'utf8').catch(() => 'null')) as CaptureRecord | null;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'recovery-'));
  dir = new VmDir(stateDir, VM);
  await mkdir(dir.dir, { recursive: true });
  // The test process stands in for QEMU's PID: alive for as long as the test runs.
  await writeFile(dir.pidFile, `${process.pid}\n`);
  logged = [];
  discarded = [];
  agent = new QmpSnapshotAgent({
    stateDir,
    images: {
      ...bundleImageStore,
      discardImage: async (_location, snapshotId, vm) => {
        discarded.push(`${snapshotId}/${vm.namespace}/${vm.name}`);
      },
    },
    recoveryRetryMs: 100,
    log: (line) => logged.push(line),
  });
});
afterEach(async () => {
  await agent.releasePausedVms();
  await qemu?.stop();
  qemu = undefined;
  await rm(stateDir, { recursive: true, force: true });
});

describe('a capture cut short before T_i', () => {
  it('copying: cancels the migration still running, resumes the guest and discards the image', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'paused', 'active');
    await writeCaptureRecord(dir.captureRecord, base());
    await agent.recoverCaptures();
    expect(qemu.commands).toEqual([
      'query-migrate',
      'migrate_cancel',
      'query-migrate',
      'query-status',
      'cont',
    ]);
    expect(qemu.status).toBe('running');
    expect(discarded).toEqual(['snap-1/default/vm-a']);
    expect(await record()).toBeNull();
    expect(logged).toEqual([
      'agent: recovery: the capture snap-1/default/vm-a was cut short before T_i (guest paused, resumed); it is not a capture',
    ]);
    await expect(agent.resumeCaptured('snap-1', VM)).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('copying with the guest running (a capture that resumes at once): no cont, the image still goes', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'running', 'failed');
    await writeCaptureRecord(dir.captureRecord, base());
    await agent.recoverCaptures();
    expect(qemu.commands).toEqual(['query-migrate', 'query-status']);
    expect(discarded).toEqual(['snap-1/default/vm-a']);
    expect(await record()).toBeNull();
  });
});

describe('a capture held at T_i', () => {
  it('held within its deadline: stays paused until resumeCaptured, which answers as before the crash', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'postmigrate');
    const before = held(60_000);
    await writeCaptureRecord(dir.captureRecord, before);
    await agent.recoverCaptures();
    expect(qemu.commands).toEqual([]);
    expect(qemu.status).toBe('postmigrate');
    const resumed = await agent.resumeCaptured('snap-1', VM);
    expect(qemu.status).toBe('running');
    expect(resumed.downtimeMs).toBe(Date.parse(resumed.resumedAt) - before.held!.stoppedAtMs);
    expect(await record()).toMatchObject({ phase: 'ended', end: { by: 'operator', ...resumed } });
    expect(await agent.resumeCaptured('snap-1', VM)).toEqual(resumed);
  });

  it('held within its deadline: a repeated capture request gets the recorded answer, not a second capture', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'postmigrate');
    const before = held(60_000);
    await writeCaptureRecord(dir.captureRecord, before);
    await agent.recoverCaptures();
    const request = { snapshotId: 'snap-1', vm: VM, storageLocation: before.storageLocation };
    // The restarted operator asks again for the capture its predecessor asked for.
    expect(await agent.capture({ ...request, resume: 'OnRequest' })).toEqual(before.held!.result);
    expect(qemu.commands).toEqual([]);
    // The same snapshot asked with other settings, and another snapshot, are refused.
    await expect(agent.capture({ ...request, resume: 'Immediately' })).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/with other settings is refused/),
    });
    await expect(
      agent.capture({ ...request, snapshotId: 'snap-2', resume: 'OnRequest' }),
    ).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/is postmigrate: only a running VM is captured live/),
    });
    expect(qemu.status).toBe('postmigrate');
    // Once the pause is over the capture is no longer held: a new request is a new capture.
    await agent.resumeCaptured('snap-1', VM);
    expect(await record()).toMatchObject({ phase: 'ended' });
  });

  it('held within its deadline: the deadline it had still fires', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'postmigrate');
    await writeCaptureRecord(dir.captureRecord, held(300));
    await agent.recoverCaptures();
    expect(qemu.status).toBe('postmigrate');
    for (let i = 0; i < 100 && qemu.status !== 'running'; i++) await sleep(20);
    expect(qemu.status).toBe('running');
    await expect(agent.resumeCaptured('snap-1', VM)).rejects.toMatchObject({
      code: 'Conflict',
      message: expect.stringMatching(/resumed by the agent after 4 s without the operator/),
    });
  });

  it('held past its deadline: resumed before recovery returns; resumeCaptured says Conflict', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'postmigrate');
    await writeCaptureRecord(dir.captureRecord, held(-1000));
    await agent.recoverCaptures();
    expect(qemu.status).toBe('running');
    expect(await record()).toMatchObject({ phase: 'ended', end: { by: 'deadline' } });
    expect(logged).toEqual([
      'agent: resumed default/vm-a: its pause deadline (4000 ms) passed while no agent ran; its capture (snap-1/default/vm-a) is no longer consistent',
    ]);
    await expect(agent.resumeCaptured('snap-1', VM)).rejects.toMatchObject({ code: 'Conflict' });
  });

  it('resuming: finishes the decision the dead agent recorded, and answers with it', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'postmigrate');
    await writeCaptureRecord(dir.captureRecord, {
      ...held(60_000),
      phase: 'resuming',
      end: { by: 'operator' },
    });
    await agent.recoverCaptures();
    expect(qemu.status).toBe('running');
    expect(await record()).toMatchObject({ phase: 'ended', end: { by: 'operator' } });
    expect((await agent.resumeCaptured('snap-1', VM)).downtimeMs).toBeGreaterThan(3000);
  });

  it('ended: a retried resumeCaptured gets the recorded answer; an old one is forgotten', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'running');
    const end = { by: 'operator' as const, resumedAt: new Date().toISOString(), downtimeMs: 1234 };
    await writeCaptureRecord(dir.captureRecord, { ...held(60_000), phase: 'ended', end });
    await agent.recoverCaptures();
    expect(await agent.resumeCaptured('snap-1', VM)).toEqual({
      resumedAt: end.resumedAt,
      downtimeMs: 1234,
    });
    expect(qemu.commands).toEqual([]);

    const old = { ...end, resumedAt: new Date(Date.now() - 3_600_000).toISOString() };
    await writeCaptureRecord(dir.captureRecord, {
      ...held(60_000),
      snapshotId: 'snap-0',
      phase: 'ended',
      end: old,
    });
    await agent.recoverCaptures();
    expect(await record()).toBeNull();
    await expect(agent.resumeCaptured('snap-0', VM)).rejects.toMatchObject({ code: 'NotFound' });
  });
});

describe('a capture request repeated while the first is under way', () => {
  it('joins it: one capture asked of QEMU, its outcome for both; another snapshot gets Conflict', async () => {
    // A guest stopped by someone else: the capture gets as far as the run state and is refused.
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'paused');
    const request = { snapshotId: 'snap-1', vm: VM, storageLocation: `file://${stateDir}/bundles` };
    const outcomes = await Promise.allSettled([
      agent.capture(request),
      agent.capture(request),
      agent.capture({ ...request, snapshotId: 'snap-2' }),
    ]);
    expect(outcomes.map((o) => o.status === 'rejected' && (o.reason as Error).message)).toEqual([
      'VM default/vm-a is paused: only a running VM is captured live',
      'VM default/vm-a is paused: only a running VM is captured live',
      'VM default/vm-a has a capture, load or resume in progress',
    ]);
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(qemu.commands).toEqual(['query-status']);
    // Over: the next request is a capture of its own.
    await agent.capture(request).catch(() => undefined);
    expect(qemu.commands).toEqual(['query-status', 'query-status']);
  });
});

describe('records that are not a live capture', () => {
  it('a record whose QEMU is gone, or was replaced, is removed without a word to any QEMU', async () => {
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'paused');
    await writeCaptureRecord(dir.captureRecord, { ...held(60_000), qemuPid: DEAD_PID });
    await agent.recoverCaptures();
    expect(await record()).toBeNull();
    expect(qemu.commands).toEqual([]);
    expect(logged).toEqual([
      'agent: recovery: the QEMU of default/vm-a that snap-1/default/vm-a captured is gone; record removed',
    ]);
  });

  it('a file that is not a record is removed and said so; a cut-short temp file goes too', async () => {
    await writeFile(dir.captureRecord, '{"phase":"held"');
    await writeFile(`${dir.captureRecord}.tmp`, '{');
    await agent.recoverCaptures();
    expect(await record()).toBeNull();
    await expect(readFile(`${dir.captureRecord}.tmp`)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(logged).toEqual([
      expect.stringMatching(/recovery of default\/vm-a: removing .*capture\.json is not JSON/),
    ]);
  });

  it('a QEMU that does not answer yet: the record stays, and recovery tries again until it does', async () => {
    await writeCaptureRecord(dir.captureRecord, base());
    await agent.recoverCaptures();
    expect(await record()).toMatchObject({ phase: 'copying' });
    expect(logged).toEqual([
      expect.stringMatching(/recovery of default\/vm-a failed, trying again in 100 ms/),
    ]);
    qemu = await ScriptedQemu.start(dir.qmpSocket, 'paused', 'failed');
    // The retry resumes the guest, then removes the record: wait for both.
    for (let i = 0; i < 100 && (qemu.status !== 'running' || (await record()) !== null); i++) await sleep(20);
    expect(qemu.status).toBe('running');
    expect(await record()).toBeNull();
  });
});

describe('load records', () => {
  it('a load that was answered: a restarted agent leaves the loaded VM for its resume', async () => {
    const loaded = spawn('sleep', ['60'], { stdio: 'ignore' });
    await writeFile(dir.pidFile, `${loaded.pid}\n`);
    const record = {
      restoreId: 'r-1',
      startedAt: new Date().toISOString(),
      loadedAt: new Date().toISOString(),
    };
    await writeFile(dir.loadRecord, JSON.stringify(record));
    try {
      await agent.recoverCaptures();
      expect(await dir.runningPid()).toBe(loaded.pid);
      expect(JSON.parse(await readFile(dir.loadRecord, 'utf8'))).toEqual(record);
      expect(logged).toEqual([]);
    } finally {
      loaded.kill('SIGKILL');
    }
  });

  it('a load cut short: the QEMU it started is stopped and the folder takes the next load', async () => {
    // Stands in for the QEMU a load started (-incoming defer -S): a process the agent must stop.
    const started = spawn('sleep', ['60'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => started.once('exit', resolve));
    await writeFile(dir.pidFile, `${started.pid}\n`);
    await writeFile(
      dir.loadRecord,
      JSON.stringify({ restoreId: 'r-1', startedAt: new Date().toISOString() }),
    );
    try {
      await agent.recoverCaptures();
      await exited;
      expect(await dir.runningPid()).toBeUndefined();
      await expect(readFile(dir.loadRecord)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(readFile(dir.pidFile)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(logged).toEqual([
        `agent: recovery: a load of default/vm-a was cut short; its QEMU (PID ${started.pid}) stopped`,
      ]);
    } finally {
      started.kill('SIGKILL');
    }
  });

  it('no vms folder at all: nothing to do', async () => {
    await rm(join(stateDir, 'vms'), { recursive: true });
    await agent.recoverCaptures();
    expect(logged).toEqual([]);
  });
});
