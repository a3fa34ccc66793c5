// A realistic manifest for tests of the store: two VMs, channel state, flows.
import type {
  BundleFile,
  BundleManifestContent,
  ChannelStateFile,
  FlowsFile,
} from '../../../src/store/index.js';

export const sampleVms = [
  { namespace: 'bank', name: 'teller-0' },
  { namespace: 'bank', name: 'teller-1' },
] as const;

const zeroDigest = `sha256:${'0'.repeat(64)}`;

export function sampleContent(
  images: BundleFile[] = sampleVms.map((vm) => ({
    path: `images/${vm.namespace}/${vm.name}.img`,
    size: 1024,
    digest: zeroDigest,
  })),
  channelState: ChannelStateFile | null = {
    path: 'channel-state.json',
    size: 2,
    digest: zeroDigest,
    packets: 0,
  },
  flows: FlowsFile | null = { path: 'flows.json', size: 2, digest: zeroDigest, flows: 0 },
): BundleManifestContent {
  return {
    snapshot: {
      namespace: 'bank',
      name: 'nightly',
      uid: '6a1f0c2e-4b7d-4a55-9d0e-8f1b2c3d4e5f',
      createdAt: '2026-11-25T01:00:00.000Z',
      networkMode: 'Buffer',
      network: {
        type1: 120,
        type2Recorded: 3,
        type3Buffered: 7,
        type3Reinjected: 7,
        bufferedBytes: 0,
        peakBufferBytes: 4410,
        dropped: 0,
      },
    },
    vms: sampleVms.map((vm, i) => ({
      namespace: vm.namespace,
      name: vm.name,
      uid: `uid-${vm.name}`,
      mac: `52:54:00:00:00:0${i}`,
      sourceNode: `node-${i}`,
      snapshotHost: 'snap-0',
      vmi: {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachineInstance',
        metadata: { name: vm.name, namespace: vm.namespace },
        spec: { domain: { memory: { guest: '128Mi' }, devices: {} } },
      },
      timeline: {
        snapshotStartedAt: `2026-11-25T01:00:0${i}.000Z`,
        captureStartedAt: `2026-11-25T01:00:0${i}.500Z`,
        capturedAt: `2026-11-25T01:00:0${i + 1}.250Z`,
        downtimeMs: 18.5,
        epochAdvancedAt: `2026-11-25T01:00:0${i + 1}.280Z`,
      },
      image: images[i]!,
    })),
    channelState,
    flows,
  };
}
