// Kill the operator at each step of a snapshot: real `violin operator`
// processes with leader election, against the real API server, a real
// ovsdb-server (VM ports found through OVSDB), the real filesystem store, and
// the recording OFC and agents served over their real HTTP APIs. The leader is
// SIGKILLed while a call of the chosen step is held; the standby takes the
// lease over and must finish the snapshot (or finish aborting it), and while
// the leader lived the standby must not have acted.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';

import { startAgentServer, type AgentServer } from '../../../src/agent/server.js';
import { ControlServer } from '../../../src/ofc/control/server.js';
import { resourcePath } from '../../../src/operator/kube-api.js';
import {
  DISTRIBUTED_SNAPSHOT_RESOURCE,
  snapshotId,
} from '../../../src/reconcilers/distributed-snapshot/resource.js';
import { startOvs, type OvsInstance } from '../../support/ovs.js';
import { requireRoot } from '../../support/require-tool.js';
import { Harness, VM_NAMES } from './harness.js';
import type { Gate } from './recording-fakes.js';

const LEASE = 'violin-operator-kill';
/** Each test starts up to two operator processes through tsx on a shared 2-core machine: allow for that. */
const TEST_TIMEOUT_MS = 240_000;

/** Fails with `what` instead of hanging until the test's timeout. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
const REPO = join(import.meta.dirname, '..', '..', '..');

describe('violin operator killed at each step of a snapshot', { timeout: TEST_TIMEOUT_MS }, () => {
  let ovs: OvsInstance;
  let storageDir: string;
  let h: Harness;
  let ofcServer: ControlServer;
  let agentServers: AgentServer[] = [];
  let operators: ChildProcess[] = [];
  let operatorLog: string[] = [];

  beforeAll(async () => {
    requireRoot('the OVS fixture of the operator kill test');
    ovs = await startOvs({ name: 'tckill' });
    await ovs.addBridge('br-leaf1');
  });

  afterAll(async () => {
    await ovs?.stop();
  });

  beforeEach(async () => {
    storageDir = await mkdtemp(join(tmpdir(), 'violin-kill-bundles-'));
    h = await Harness.create('tckill', pathToFileURL(storageDir).href);
    // The VMs' ports, as the lab records them: Port external_ids violin-vm=<ns>/<name>, Interface attached-mac.
    for (const [i, name] of VM_NAMES.entries()) {
      await ovs.addHost(`k${h.ns.name.slice(-4)}${i}`, `10.77.0.${i + 1}`, 'br-leaf1', {
        mac: `52:54:00:00:00:0${i}`,
        owner: { vm: `${h.ns.name}/${name}` },
      });
    }
    ofcServer = await ControlServer.listen('127.0.0.1:0', {
      control: h.ofc,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      ready: () => true,
    });
    agentServers = [];
    for (const node of [...h.workers, ...h.snapshotHosts]) {
      agentServers.push(
        await startAgentServer(await h.agents.forNode(node), { node, host: '127.0.0.1', port: 0 }),
      );
    }
  });

  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') {
      process.stderr.write(`operator logs (last ${operatorLog.length} lines):\n${operatorLog.join('\n')}\n`);
    }
    operatorLog = [];
    for (const operator of operators) operator.kill('SIGKILL');
    operators = [];
    for (const server of agentServers) await server.close();
    await ofcServer?.close();
    await h?.close();
    await rm(storageDir, { recursive: true, force: true });
  });

  function startOperator(): ChildProcess {
    const nodes = [...h.workers, ...h.snapshotHosts];
    const operator = spawn(
      process.execPath,
      [
        join(REPO, 'bin', 'violin.mjs'),
        'operator',
        '--kubeconfig',
        inject('kubeconfig'),
        '--namespace',
        h.ns.name,
        '--leader-elect',
        '--leader-election-namespace',
        h.ns.name,
        '--leader-election-id',
        LEASE,
        '--leader-election-lease-duration',
        '3',
        '--leader-election-renew-deadline',
        '2',
        '--leader-election-retry-period',
        '0.5',
        '--metrics-bind-address',
        '0',
        '--health-probe-bind-address',
        '0',
      ],
      {
        cwd: REPO,
        env: {
          ...process.env,
          LOG_LEVEL: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'warn',
          VIOLIN_OFC_ADDRESS: ofcServer.address,
          VIOLIN_OVSDB_REMOTES: `unix:${ovs.dbSocket}`,
          VIOLIN_AGENTS: nodes.map((node, i) => `${node}=${agentServers[i]?.url}`).join(','),
          // Its agents run the VMs' QEMU themselves: the qemu backend (the operator's default is libvirt).
          VIOLIN_VM_BACKEND: 'qemu',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    // Warnings and errors of every operator, kept to explain a failure (their logs are JSON lines on stdout).
    operator.stdout?.setEncoding('utf8');
    operator.stdout?.on('data', (chunk: string) => {
      if (process.env.VIOLIN_TEST_VERBOSE) process.stdout.write(chunk);
      operatorLog.push(...chunk.split('\n').filter((line) => line.trim() !== ''));
      operatorLog.splice(0, Math.max(0, operatorLog.length - 40));
    });
    operators.push(operator);
    return operator;
  }

  async function leaseHolder(): Promise<string | undefined> {
    try {
      const lease = await h.api.getObject<{ spec?: { holderIdentity?: string } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${h.ns.name}/leases/${LEASE}`,
      );
      return lease.spec?.holderIdentity || undefined;
    } catch {
      return undefined;
    }
  }

  /** A leader, then a standby once the leader holds the lease: the leader is known to be the first. */
  async function leaderAndStandby(): Promise<{ leader: ChildProcess; standby: ChildProcess }> {
    const leader = startOperator();
    await h.waitFor('the first operator to lead', leaseHolder, 90_000);
    const standby = startOperator();
    return { leader, standby };
  }

  async function killAndHandOver(leader: ChildProcess, gate: Gate): Promise<void> {
    // On a loaded machine a leader can lose its lease and exit on its own first: its 'exit' has then
    // been emitted already, and waiting for it would hang.
    if (leader.exitCode === null && leader.signalCode === null) {
      const exited = new Promise((resolve) => leader.once('exit', resolve));
      leader.kill('SIGKILL');
      await exited;
    }
    // The held call completes on the far side, as an OFC or agent would finish work its dead caller asked for.
    gate.release();
  }

  async function expectSucceeded(name: string): Promise<void> {
    const snap = await h.waitForPhase(name, ['Succeeded', 'Failed'], 90_000);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Succeeded');
    expect(snap.status?.vms?.every((vm) => vm.epoch === 'Post')).toBe(true);
    expect(h.log.count('ofc', 'abort')).toBe(0);
    // Every VM was captured before its epoch advanced, and the bundle was committed (on disk, verified by the store).
    for (const vm of VM_NAMES) {
      const subject = `${h.ns.name}/${vm}`;
      expect(h.log.indexOf('ofc', 'advance', subject)).toBeGreaterThan(
        h.log.indexOf('agent', 'captured', subject),
      );
    }
    expect(snap.status?.bundle?.manifestDigest).toMatch(/^sha256:/);
  }

  async function expectAborted(name: string, reason: string): Promise<void> {
    const snap = await h.waitForPhase(name, ['Succeeded', 'Failed'], 90_000);
    expect(snap.status?.phase, JSON.stringify(snap.status)).toBe('Failed');
    expect(snap.status?.failureReason).toBe(reason);
    expect(h.ofc.snapshots.get(snapshotId(snap))?.state).toBe('Aborted');
    expect(await h.migrations()).toEqual([]);
  }

  /** Kill while the next call of an OFC operation is held; the standby must not have made that call itself. */
  async function killDuringOfc(
    op: 'bridges' | 'arm' | 'advance' | 'finish' | 'abort',
    name: string,
  ): Promise<void> {
    const { leader } = await leaderAndStandby();
    const gate = h.ofc.gates.hold(op);
    await h.createSnapshot(name);
    await within(gate.reached, 90_000, `the leader's ${op} call (snapshot status: ${name})`).catch(
      async (err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify((await h.getSnapshot(name))?.status)}`, {
          cause: err,
        });
      },
    );
    // A standby that acted would have made the same call again by now.
    if (op === 'arm' || op === 'finish' || op === 'abort') expect(h.log.count('ofc', op)).toBe(1);
    await killAndHandOver(leader, gate);
  }

  it('kill point 1: right after the snapshot is created', async () => {
    const { leader } = await leaderAndStandby();
    await h.createSnapshot('k1');
    leader.kill('SIGKILL');
    await expectSucceeded('k1');
  });

  it('kill point 2: Planning, while the OFC is asked for its bridges', async () => {
    await killDuringOfc('bridges', 'k2');
    await expectSucceeded('k2');
  });

  it('kill point 3: arming the network', async () => {
    await killDuringOfc('arm', 'k3');
    await expectSucceeded('k3');
  });

  it('kill point 4: Snapshotting, a VM migrating to its snapshot host', async () => {
    const { leader } = await leaderAndStandby();
    h.standin.hangMigrationOf('bank-2');
    await h.createSnapshot('k4');
    await h.waitFor('bank-2 migrating', async () => {
      const snap = await h.getSnapshot('k4');
      return snap?.status?.vms?.find((vm) => vm.name === 'bank-2')?.phase === 'Migrating' ? true : undefined;
    });
    leader.kill('SIGKILL');
    h.standin.releaseMigrationOf('bank-2');
    await expectSucceeded('k4');
  });

  it('kill point 5: Snapshotting, a capture in flight', async () => {
    const { leader } = await leaderAndStandby();
    const release = h.agents.holdCaptureOf('bank-1');
    await h.createSnapshot('k5');
    await h.waitFor('bank-1 capturing', async () =>
      h.log.count('agent', 'capture', `${h.ns.name}/bank-1`) > 0 ? true : undefined,
    );
    await killAndHandOver(leader, { reached: Promise.resolve(), release });
    await expectSucceeded('k5');
    // The new leader asked again and got the capture the dead one had asked for: one capture of bank-1.
    expect(h.log.count('agent', 'capture', `${h.ns.name}/bank-1`)).toBeGreaterThanOrEqual(2);
    expect(h.log.count('agent', 'captured', `${h.ns.name}/bank-1`)).toBe(1);
  });

  it('kill point 6: Snapshotting, between T_i and the epoch advance', async () => {
    // The capture was recorded before the advance; the OFC completes the advance its dead caller asked for
    // and the new leader records the VM as post-snapshot without capturing it again.
    await killDuringOfc('advance', 'k6');
    await expectSucceeded('k6');
    const held = h.log.calls.find((c) => c.component === 'ofc' && c.op === 'advance')?.subject;
    expect(h.log.count('agent', 'capture', held)).toBe(1);
  });

  it('kill point 7: Committing, while the OFC finishes', async () => {
    await killDuringOfc('finish', 'k7');
    await expectSucceeded('k7');
  });

  it('kill point 8: aborting after a failed capture, while the network is released', async () => {
    h.agents.failCaptureOf('bank-3', 'QMP: migrate-to-file failed');
    await killDuringOfc('abort', 'k8');
    await expectAborted('k8', 'CaptureFailed');
  });

  it('kill point 9: deleting a snapshot in flight, while the network is released', async () => {
    const { leader } = await leaderAndStandby();
    h.standin.hangMigrationOf('bank-0');
    await h.createSnapshot('k9');
    await h.waitForPhase('k9', ['Snapshotting']);
    const gate = h.ofc.gates.hold('abort');
    await h.api.deleteObject(resourcePath(DISTRIBUTED_SNAPSHOT_RESOURCE, h.ns.name, 'k9'));
    await within(gate.reached, 90_000, "the leader's abort call");
    await killAndHandOver(leader, gate);
    await h.waitFor('k9 to be gone', async () => ((await h.getSnapshot('k9')) ? undefined : true), 90_000);
    expect(await h.migrations()).toEqual([]);
  });
});
