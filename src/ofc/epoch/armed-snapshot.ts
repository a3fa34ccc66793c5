// One armed snapshot's state in the epoch engine: every VM's epoch, the
// Type-3 frames held for it, what was recorded, and the rules its bridges
// should carry, computed from that state alone (which is what makes a
// reconnecting switch's resync exact).
import { OfcError } from '../control/errors.js';
import type {
  ArmRequest,
  ArmResult,
  Epoch,
  FinishResult,
  NetworkCounters,
  RecordedPacket,
  SnapshotNetworkStatus,
} from '../control/types.js';
import type { BufferPort, BufferPortStats } from '../buffer/buffer-port.js';
import { HeldPackets } from '../buffer/held-packets.js';
import type { FlowRule } from '../switch/flow-rule.js';
import { decisionRules, receiverTagRule, replayRule, senderTagRule, sharedRules } from './pipeline.js';

interface LocalCounters {
  type2Recorded: number;
  type3Buffered: number;
  type3Reinjected: number;
  /** Held frames that could not be re-injected because their bridge was gone. */
  lost: number;
}

export class ArmedSnapshot {
  state: SnapshotNetworkStatus['state'] = 'Armed';
  abortReason?: string;
  readonly epochs = new Map<string, Epoch>();
  readonly confirmedAt = new Map<string, string>();
  readonly vmByMac = new Map<string, string>();
  readonly held: HeldPackets;
  /** Receivers whose frames pass straight through: advancing or advanced. */
  readonly passThrough = new Set<string>();
  /** When the last Type-3 PACKET_IN for each receiver arrived (performance.now()). */
  readonly lastHoldAt = new Map<string, number>();
  readonly local: LocalCounters = { type2Recorded: 0, type3Buffered: 0, type3Reinjected: 0, lost: 0 };
  readonly channelState: RecordedPacket[] = [];
  /** The datapath tier's buffer port on each bridge. */
  readonly bufferPorts = new Map<string, BufferPort>();
  recordedBytes = 0;
  finalCounters?: NetworkCounters;
  finalPortStats?: BufferPortStats;
  finishResult?: FinishResult;
  /** Serialises advance, finish and abort of this snapshot. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Settles when the pipeline of an aborted snapshot has been removed. */
  teardown?: Promise<void>;

  constructor(
    readonly request: ArmRequest,
    readonly slot: number,
    readonly bridges: string[],
    readonly armedAtMs: number,
    readonly armResult: ArmResult,
  ) {
    this.held = new HeldPackets(request.bufferLimitBytes);
    for (const vm of request.vms) {
      this.epochs.set(vm.name, 'Pre');
      this.vmByMac.set(vm.mac, vm.name);
    }
  }

  get installsPipeline(): boolean {
    return this.state === 'Armed' && this.request.mode !== 'Off';
  }

  get usesBufferPorts(): boolean {
    return this.request.mode === 'Buffer' && this.request.bufferTier === 'datapath';
  }

  /** `: <abort reason>`, or nothing: the tail of a message about this snapshot's state. */
  get reasonSuffix(): string {
    return this.abortReason ? `: ${this.abortReason}` : '';
  }

  serial<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.tail.then(operation, operation);
    this.tail = run.catch(() => undefined);
    return run;
  }

  macOf(vm: string): string {
    const armed = this.request.vms.find((v) => v.name === vm);
    if (!armed)
      throw new OfcError('NotFound', `VM ${vm} is not armed in snapshot ${this.request.snapshotId}`);
    return armed.mac;
  }

  /** The rules this snapshot puts on `bridge` now. */
  rulesFor(bridge: string): FlowRule[] {
    const { slot, request } = this;
    const bufferPort = this.bufferPorts.get(bridge);
    const rules = sharedRules();
    if (this.usesBufferPorts) {
      // Without its port (not yet open on a bridge that just joined) the
      // bridge holds nothing: its Type-3 frames go to the controller tier.
      if (bufferPort) rules.push(replayRule(slot, bufferPort.ofport));
      rules.push(
        ...decisionRules(
          slot,
          request.mode,
          request.recordChannelState,
          bufferPort ? { tier: 'datapath', bufferPort: bufferPort.ofport } : { tier: 'controller' },
        ),
      );
    } else {
      rules.push(...decisionRules(slot, request.mode, request.recordChannelState));
    }
    for (const vm of request.vms) {
      const post = this.epochs.get(vm.name) === 'Post';
      // Tagged by source MAC on every bridge, not by ingress port: the VM
      // live-migrates to a snapshot host during the snapshot, and its MAC is
      // what moves with it.
      rules.push(senderTagRule(slot, vm.mac, post), receiverTagRule(slot, vm.mac, post));
    }
    return rules;
  }
}
