// TEMPORARY: the DistributedSnapshot shape as crds/violin.dev_distributedsnapshots.yaml
// defines it, until src/api's generated types land; then this file goes away.
import type { Condition } from './shared/conditions.js';
import type { CustomResource } from './shared/objects.js';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface DistributedSnapshotSpec {
  selector: { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] };
  snapshotHosts?: { nodeSelector?: Record<string, string> };
  network?: {
    mode?: 'Buffer' | 'Drop' | 'Off';
    bufferTier?: 'datapath' | 'controller';
    bufferLimit?: number | string;
    recordChannelState?: boolean;
  };
  skewAlignment?: 'None' | 'Profile';
  storageLocation: string;
  afterSnapshot?: 'Stay' | 'ReturnToSource';
  timeout?: string;
}

export type SnapshotPhase = 'Pending' | 'Planning' | 'Snapshotting' | 'Committing' | 'Succeeded' | 'Failed';
export type VmPhase =
  'Pending' | 'Migrating' | 'Capturing' | 'Captured' | 'Returning' | 'Returned' | 'Failed';

export interface SnapshotVmStatus {
  name: string;
  node?: string;
  snapshotHost?: string;
  migration?: string;
  phase?: VmPhase;
  epoch?: 'Pre' | 'Snapshot' | 'Post';
  snapshotStart?: string;
  capturedAt?: string;
  downtimeMs?: number;
  imageBytes?: number;
  digest?: string;
  message?: string;
}

export interface DistributedSnapshotStatus {
  phase?: SnapshotPhase;
  observedGeneration?: number;
  conditions?: Condition[];
  progress?: string;
  vms?: SnapshotVmStatus[];
  network?: {
    type1?: number;
    type2Recorded?: number;
    type3Buffered?: number;
    type3Reinjected?: number;
    peakBufferBytes?: number;
    dropped?: number;
  };
  skew?: string;
  skewMs?: number;
  duration?: string;
  durationMs?: number;
  bundle?: { storageLocation?: string; path?: string; manifestDigest?: string };
  startTime?: string;
  completionTime?: string;
  failureReason?: string;
  failureMessage?: string;
}

export type DistributedSnapshot = CustomResource<DistributedSnapshotSpec, DistributedSnapshotStatus>;
