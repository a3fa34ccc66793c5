// Prometheus metrics of the OFC process, on a registry of its own so that two
// controllers in one test process never share counters.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricSources {
  switchesConnected(): number;
  heldPackets(): number;
  heldBytes(): number;
  armedSnapshots(): number;
}

export class OfcMetrics {
  readonly registry = new Registry();
  readonly epochAdvanceSeconds: Histogram;
  readonly armSeconds: Histogram;
  readonly packetIns: Counter<'role'>;
  readonly snapshotsAborted: Counter;
  readonly type3Late: Counter;
  readonly connectionsClosed: Counter<'reason'>;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    new Gauge({
      name: 'violin_ofc_switches_connected',
      help: 'Bridges connected to the OFC with a completed handshake',
      registers,
      collect() {
        this.set(sources.switchesConnected());
      },
    });
    new Gauge({
      name: 'violin_ofc_type3_held_packets',
      help: 'Type-3 (post to pre) packets held in the controller buffer right now',
      registers,
      collect() {
        this.set(sources.heldPackets());
      },
    });
    new Gauge({
      name: 'violin_ofc_type3_held_bytes',
      help: 'Bytes of Type-3 packets held in the controller buffer right now',
      registers,
      collect() {
        this.set(sources.heldBytes());
      },
    });
    new Gauge({
      name: 'violin_ofc_armed_snapshots',
      help: 'Snapshots whose epoch pipeline is installed',
      registers,
      collect() {
        this.set(sources.armedSnapshots());
      },
    });
    // The paper measured 28 ms per epoch update; the buckets straddle it.
    this.epochAdvanceSeconds = new Histogram({
      name: 'violin_ofc_epoch_advance_seconds',
      help: 'ADVANCE_EPOCH: from the control call to the new epoch barrier-confirmed on every bridge',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.028, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.armSeconds = new Histogram({
      name: 'violin_ofc_arm_seconds',
      help: 'Arm: from the control call to the pipeline barrier-confirmed on every bridge',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    });
    this.packetIns = new Counter({
      name: 'violin_ofc_packet_ins_total',
      help: 'PACKET_IN messages by the pipeline role of the flow that sent them',
      labelNames: ['role'],
      registers,
    });
    this.snapshotsAborted = new Counter({
      name: 'violin_ofc_snapshots_aborted_total',
      help: 'Snapshots aborted, by the transaction controller or by the OFC itself',
      registers,
    });
    this.type3Late = new Counter({
      name: 'violin_ofc_type3_late_total',
      help: 'Type-3 frames reported after their receiver had turned post; they may have been overtaken',
      registers,
    });
    this.connectionsClosed = new Counter({
      name: 'violin_ofc_switch_connections_closed_total',
      help: 'Switch connections closed, by reason',
      labelNames: ['reason'],
      registers,
    });
  }
}
