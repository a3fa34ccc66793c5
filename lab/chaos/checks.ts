// What a chaos run checks once its snapshot or restore has ended, each read
// from the real thing: libvirt's state of each VM's domain, the bank's invariant,
// the OFC's gauges and per-snapshot counters, the bridges' flow tables, and the
// VirtualMachineInstanceMigrations in the API server.
import { setTimeout as sleep } from 'node:timers/promises';

import { KubeVirtClient } from '../../src/kubevirt/client.js';
import { isMigrationFinal } from '../../src/kubevirt/types.js';
import { OfcControlClient } from '../../src/ofc/control/client.js';
import { OfcError } from '../../src/ofc/control/errors.js';
import { cookieFor, FlowRole } from '../../src/ofc/epoch/pipeline.js';
import type { LabCluster } from '../cluster/cluster.js';

export interface VmState {
  name: string;
  /** Lab nodes whose launcher pod has a domain of this VM (exactly one when all is well). */
  nodes: string[];
  /** libvirt's state of the domain ('running', 'paused', ...), or why it did not answer. */
  status?: string;
  /** libvirt's reason for that state ('user', 'migrating', 'unpaused', ...). */
  reason?: string;
}

/** Where each VM runs and libvirt's state of its domain. */
export async function vmStates(
  lab: Pick<LabCluster, 'standin'>,
  namespace: string,
  names: string[],
): Promise<VmState[]> {
  const states: VmState[] = [];
  for (const name of names) {
    const found = await lab.standin.domainStates({ namespace, name });
    states.push({ name, nodes: found.map((f) => f.node), status: found[0]?.state, reason: found[0]?.reason });
  }
  return states;
}

export function vmProblems(states: readonly VmState[]): string[] {
  return states.flatMap((s) => {
    if (s.nodes.length === 0) return [`${s.name}: no QEMU running`];
    if (s.nodes.length > 1) return [`${s.name}: QEMU running on ${s.nodes.join(' and ')}`];
    return s.status === 'running' ? [] : [`${s.name} on ${s.nodes[0]}: ${s.status} (${s.reason ?? ''})`];
  });
}

/**
 * VMs still settling (a migration handing over, an agent resuming) are given `graceMs` to get
 * running; what is not running then is reported.
 */
export async function waitForVmsRunning(
  lab: Pick<LabCluster, 'standin'>,
  namespace: string,
  names: string[],
  graceMs = 20_000,
): Promise<VmState[]> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const states = await vmStates(lab, namespace, names);
    if (vmProblems(states).length === 0 || Date.now() > deadline) return states;
    await sleep(1000);
  }
}

/**
 * The cookie of the OFC's base forwarding flow. The lab installs the same flow (table 0, priority 0,
 * NORMAL) with cookie 0 at start; after an OFC or ovs-vswitchd restart the OFC's copy is the one on the
 * bridge. Same match, same action: the same table, so the cookie is left out of the comparison.
 */
const BASE_COOKIE = `cookie=0x${cookieFor(0, FlowRole.Base).toString(16)}, `;

/** Every bridge's flows without counters, sorted: what must be the same before and after a run. */
export async function flowTables(lab: LabCluster): Promise<Record<string, string[]>> {
  const tables: Record<string, string[]> = {};
  for (const bridge of lab.bridges) {
    const text = await lab.ovs.ofctl(['-O', 'OpenFlow13', '--no-stats', 'dump-flows', bridge]);
    tables[bridge] = text
      .split('\n')
      .map((line) => line.trim().replace(BASE_COOKIE, ''))
      .filter((line) => line.length > 0 && !line.startsWith('OFPST_FLOW'))
      .sort();
  }
  return tables;
}

export function flowLeftovers(baseline: Record<string, string[]>, now: Record<string, string[]>): string[] {
  return Object.entries(now).flatMap(([bridge, flows]) => {
    const base = new Set(baseline[bridge] ?? []);
    const extra = flows.filter((f) => !base.has(f));
    const missing = [...base].filter((f) => !flows.includes(f));
    return [
      ...(extra.length > 0 ? [`${bridge}: ${extra.length} extra flow(s), e.g. ${extra[0]}`] : []),
      ...(missing.length > 0 ? [`${bridge}: base flow missing: ${missing.join('; ')}`] : []),
    ];
  });
}

/** The OFC's gauges: snapshots still armed and Type-3 packets held right now. */
export async function ofcGauges(lab: LabCluster): Promise<{ armed: number; held: number }> {
  const text = await (await fetch(`http://${lab.ofcControl}/metrics`)).text();
  const gauge = (name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  };
  return { armed: gauge('violin_ofc_armed_snapshots'), held: gauge('violin_ofc_type3_held_packets') };
}

export interface HeldPackets {
  /** Type-3 packets held and released (re-injected) for this snapshot, per the OFC that served it. */
  held?: number;
  released?: number;
  dropped?: number;
  /** Why the counters are missing (the OFC was restarted and its record of the snapshot went with it). */
  note?: string;
}

/** The OFC's counters for one snapshot; `ofcRestarted` says why the OFC may not know it. */
export async function heldPackets(
  lab: LabCluster,
  snapshotId: string,
  ofcRestarted: boolean,
): Promise<HeldPackets> {
  try {
    const status = await new OfcControlClient({ address: lab.ofcControl }).status(snapshotId);
    const { type3Buffered, type3Reinjected, dropped } = status.counters;
    return { held: type3Buffered, released: type3Reinjected, dropped };
  } catch (error) {
    if (error instanceof OfcError && error.code === 'NotFound') {
      return ofcRestarted
        ? { note: 'OFC restarted: frames it held died with it (TCP resends them)' }
        : { note: 'never armed' };
    }
    throw error;
  }
}

/** VirtualMachineInstanceMigrations of the namespace that have not ended. */
export async function runningMigrations(lab: LabCluster, namespace: string): Promise<string[]> {
  const migrations = await new KubeVirtClient(lab.kubeConfig).listMigrations(namespace);
  return migrations
    .filter((m) => !isMigrationFinal(m.status?.phase))
    .map((m) => `migration ${m.metadata.name} is ${m.status?.phase ?? 'not started'}`);
}
