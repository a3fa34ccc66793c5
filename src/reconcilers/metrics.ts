// The transaction controller's own metrics, next to controller-runtime's on the
// operator's /metrics: what a snapshot cost (duration, VM downtime, capture
// skew, Type-3 packets held) and how restores went. Observed once per object,
// when its status turns Succeeded or Failed.
import { Counter, Histogram, type Registry } from 'prom-client';

import type { DistributedSnapshotStatus, SnapshotRestoreStatus } from '../api/index.js';

export class TransactionMetrics {
  private readonly snapshots: Counter<'result'>;
  private readonly snapshotDuration: Histogram<'result'>;
  private readonly downtime: Histogram;
  private readonly skew: Histogram;
  private readonly type3Held: Counter;
  private readonly restores: Counter<'result'>;
  private readonly resumeSkew: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.snapshots = new Counter({
      name: 'violin_snapshots_total',
      help: 'DistributedSnapshots that ended, by result (Succeeded or Failed).',
      labelNames: ['result'],
      registers,
    });
    this.snapshotDuration = new Histogram({
      name: 'violin_snapshot_duration_seconds',
      help: 'From the start of a DistributedSnapshot to its commit or failure.',
      labelNames: ['result'],
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    this.downtime = new Histogram({
      name: 'violin_snapshot_vm_downtime_seconds',
      help: 'How long each VM was stopped for its capture (stop-and-copy).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2],
      registers,
    });
    this.skew = new Histogram({
      name: 'violin_snapshot_capture_skew_seconds',
      help: 'Spread of the capture times T_i of one snapshot.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers,
    });
    this.type3Held = new Counter({
      name: 'violin_snapshot_type3_packets_held_total',
      help: 'Post-to-pre-snapshot (Type-3) packets held by the network during committed snapshots.',
      registers,
    });
    this.restores = new Counter({
      name: 'violin_restores_total',
      help: 'SnapshotRestores that ended, by result (Succeeded or Failed).',
      labelNames: ['result'],
      registers,
    });
    this.resumeSkew = new Histogram({
      name: 'violin_restore_resume_skew_seconds',
      help: 'Spread of the resume times of the VMs of one restore.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
  }

  snapshotEnded(status: DistributedSnapshotStatus): void {
    const result = status.phase ?? 'Failed';
    this.snapshots.inc({ result });
    if (status.durationMs !== undefined) this.snapshotDuration.observe({ result }, status.durationMs / 1000);
    if (result !== 'Succeeded') return;
    for (const vm of status.vms ?? []) {
      if (vm.downtimeMs !== undefined) this.downtime.observe(vm.downtimeMs / 1000);
    }
    if (status.skewMs !== undefined) this.skew.observe(status.skewMs / 1000);
    this.type3Held.inc(status.network?.type3Buffered ?? 0);
  }

  restoreEnded(status: SnapshotRestoreStatus): void {
    this.restores.inc({ result: status.phase ?? 'Failed' });
    if (status.phase === 'Succeeded' && status.resumeSkewMs !== undefined) {
      this.resumeSkew.observe(status.resumeSkewMs / 1000);
    }
  }
}
