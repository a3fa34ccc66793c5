// Planning: resolve the selected VMs, the snapshot hosts and the VMs' switch
// ports, secure the bridges and arm the network. Ends with every VM
// pre-snapshot and one status row per VM.
import { quantityToBytes } from '../../api/values.js';
import { vmMac, type VirtualMachineInstance } from '../../kubevirt/types.js';
import type { ArmedVm, OfcCapabilities } from '../../ofc/control/types.js';
import { labelSelectorString } from '../shared/label-selector.js';
import type { DistributedSnapshotSpec, DistributedSnapshotStatus } from '../../api/index.js';
import { secureBridges } from './fail-modes.js';
import { AwaitedState, FAILURE_CLASSES, storageLocationRefusal } from '../shared/failure-classes.js';
import { armRefusalIsFailure, SnapshotFailure } from './failure.js';
import {
  blockingSnapshot,
  holdsThroughKubeVirt,
  plannedStatus,
  unpausableVmis,
  unreadyVmis,
} from './next-status.js';
import type { Pass, Step } from './pass.js';
import { snapshotHostSelector, snapshotId } from './resource.js';

const DEFAULT_BUFFER_LIMIT = '64Mi';

/**
 * A bridge reconnects to a restarted OFC (or after its ovs-vswitchd restarted) within OVS's
 * reconnect backoff, 8 s at most by default; a snapshot started meanwhile waits this long for it.
 */
export const BRIDGE_CONNECT_GRACE_MS = 30_000;

export async function plan(pass: Pass, status: DistributedSnapshotStatus): Promise<Step> {
  const { snap, namespace } = pass;
  // Everything a request can ask for that this installation cannot serve is checked
  // before any bridge is secured, so such a failure holds nothing while it ends.
  const storage = await storageLocationRefusal(snap.spec.storageLocation, pass.deps.bundles);
  if (storage) throw SnapshotFailure.of(storage.cls, storage.detail);
  const unserved = unservedNetwork(snap.spec.network, await pass.deps.ofc.capabilities());
  if (unserved) throw unserved;
  const selector = labelSelectorString(snap.spec.selector);
  const vmis = await pass.deps.kubevirt.listVmis(namespace, selector);
  if (vmis.length === 0) {
    throw SnapshotFailure.of(
      FAILURE_CLASSES.noVmsSelected,
      `spec.selector (${selector}) matches no VirtualMachineInstance in namespace ${namespace}`,
    );
  }
  const busy = blockingSnapshot(snap, await pass.deps.snapshots.list(namespace), vmis);
  if (busy) {
    pass.event(
      'Normal',
      'Queued',
      `waiting for DistributedSnapshot ${busy}, which snapshots some of the same VMs`,
    );
    return { status, requeueAfterMs: pass.pollMs * 4 };
  }
  const unready = unreadyVmis(vmis);
  if (unready) throw unready;
  const unpausable = holdsThroughKubeVirt(status) ? unpausableVmis(vmis) : undefined;
  if (unpausable) throw unpausable;
  const hostSelector = snapshotHostSelector(snap);
  const hosts = await pass.snapshotHosts();
  if (hosts.length === 0) {
    throw SnapshotFailure.of(
      FAILURE_CLASSES.noSnapshotHosts,
      `no node matches spec.snapshotHosts.nodeSelector ${labelSelectorString({ matchLabels: hostSelector })}`,
    );
  }
  const stranded = vmisOnTheOnlyHost(vmis, hosts);
  if (stranded.length > 0) {
    // KubeVirt never migrates a VM to the node it runs on, so such a migration would wait forever.
    throw SnapshotFailure.of(
      FAILURE_CLASSES.noSnapshotHosts,
      `${stranded.join(', ')} already run(s) on ${hosts[0]}, the only node matching spec.snapshotHosts.nodeSelector ` +
        `${labelSelectorString({ matchLabels: hostSelector })}; a VM is captured after a migration to another one`,
    );
  }
  const { armed, bridges } = await mapNetwork(pass, vmis, status.startTime);
  await secureBridges(pass, bridges);
  // No `bridges`: every connected bridge carries the pipeline. A VM migrated to a snapshot host talks
  // from that host's bridge, which must enforce the epochs too (the VMs' own bridges were checked above).
  const network = snap.spec.network;
  const result = await armRefusalIsFailure(() =>
    pass.deps.ofc.arm({
      snapshotId: snapshotId(snap),
      mode: network?.mode ?? 'Buffer',
      bufferTier: network?.bufferTier ?? 'controller',
      bufferLimitBytes: quantityToBytes(network?.bufferLimit ?? DEFAULT_BUFFER_LIMIT),
      recordChannelState: network?.recordChannelState ?? false,
      vms: armed,
    }),
  );
  pass.event(
    'Normal',
    'Armed',
    `network armed on ${result.bridges.length} bridge(s) at ${result.armedAt}: every VM is pre-snapshot; ` +
      `${vmis.length} VM(s), snapshot hosts ${hosts.join(', ')}`,
  );
  return { status: plannedStatus(status, vmis), requeueAfterMs: 1 };
}

/** The VMs that run on a snapshot host when it is the only one: none can migrate to a snapshot host. */
function vmisOnTheOnlyHost(vmis: VirtualMachineInstance[], hosts: string[]): string[] {
  if (hosts.length !== 1) return [];
  return vmis.filter((vmi) => vmi.status?.nodeName === hosts[0]).map((vmi) => vmi.metadata.name ?? '');
}

/**
 * The failure of a network request this OFC does not serve (a mode, or a
 * buffer tier it was started without), found by asking before anything is
 * secured or armed; undefined when it serves it. The arm still refuses such a
 * request (501), for an OFC restarted with other options in between.
 */
function unservedNetwork(
  network: DistributedSnapshotSpec['network'],
  serves: OfcCapabilities,
): SnapshotFailure | undefined {
  const mode = network?.mode ?? 'Buffer';
  const tier = network?.bufferTier ?? 'controller';
  if (!serves.modes.includes(mode)) {
    return SnapshotFailure.of(
      FAILURE_CLASSES.networkRefused,
      `spec.network.mode '${mode}' is not served by this OpenFlow controller (it serves ${serves.modes.join(', ')})`,
    );
  }
  if (mode === 'Buffer' && !serves.bufferTiers.includes(tier)) {
    return SnapshotFailure.of(
      FAILURE_CLASSES.bufferTierUnavailable,
      `bufferTier '${tier}' is not served by this OpenFlow controller (it serves ${serves.bufferTiers.join(', ')})`,
    );
  }
  return undefined;
}

/**
 * Every VM's MAC on the snapshot network, and its bridge and OpenFlow port
 * from OVSDB; and the bridges the arm will program (every connected one).
 */
async function mapNetwork(
  pass: Pass,
  vmis: VirtualMachineInstance[],
  startTime: string | undefined,
): Promise<{ armed: ArmedVm[]; bridges: string[] }> {
  for (const vmi of vmis) {
    if (!vmMac(vmi)) {
      throw SnapshotFailure.of(
        FAILURE_CLASSES.noNetworkInterface,
        `${vmi.metadata.name} reports no interface MAC in status.interfaces; the network cannot classify its packets`,
      );
    }
  }
  const attachments = await pass.deps.network.findVmAttachments(vmis);
  const bridges = new Map((await pass.deps.ofc.bridges()).map((b) => [b.name, b]));
  const armed = vmis.map((vmi) => {
    const mac = vmMac(vmi) ?? '';
    const name = `${vmi.metadata.namespace}/${vmi.metadata.name}`;
    const attachment = attachments.get(name);
    if (!attachment) {
      throw SnapshotFailure.of(
        FAILURE_CLASSES.vmNotOnSwitch,
        `${name} (MAC ${mac}) is not attached to any Open vSwitch bridge`,
      );
    }
    if (!bridges.get(attachment.bridge)?.connected) {
      throw notConnected(
        pass,
        startTime,
        `bridge ${attachment.bridge} carrying ${name} is not connected to the OpenFlow controller`,
      );
    }
    return { name, mac, bridge: attachment.bridge, ofport: attachment.ofport };
  });
  const connected = [...bridges.values()].filter((b) => b.connected).map((b) => b.name);
  return { armed, bridges: connected.sort() };
}

/**
 * A bridge not connected within the grace after the snapshot started is waited for (nothing is
 * secured or armed yet, so waiting holds nothing); past it, the snapshot fails.
 */
function notConnected(pass: Pass, startTime: string | undefined, detail: string): Error {
  const graceMs = pass.deps.bridgeConnectGraceMs ?? BRIDGE_CONNECT_GRACE_MS;
  const waitedMs = pass.now().getTime() - Date.parse(startTime ?? '');
  if (waitedMs < graceMs) return new AwaitedState(FAILURE_CLASSES.waitingForBridge, detail);
  return SnapshotFailure.of(
    FAILURE_CLASSES.bridgeNotConnected,
    `${detail} ${graceMs / 1000} s after the snapshot started`,
  );
}
