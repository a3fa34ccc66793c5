// Why an epoch advance waits for Open vSwitch's datapath, not only for a
// barrier.
//
// An OpenFlow barrier reply says that the switch has applied the flow-mods to
// its flow tables. Open vSwitch forwards most frames from the flows it has
// cached in its datapath (megaflows), and its revalidator threads bring those
// in line with the tables afterwards, on their own time. Until they have, a VM
// whose sender tag was just flipped to post still has its frames forwarded by
// a cached "pre → pre: NORMAL" flow, straight to a receiver that is still
// pre-snapshot: a Type-3 frame leaks, and the receiver's image holds a receipt
// whose send is in no image. On the lab's userspace datapath, with the machine
// loaded, 3 of 20 advances let the frames a sender sent right after the
// barrier-confirmed advance through for 150 ms (test/integration/ofc/
// advance-datapath.test.ts); one such frame once broke a bank snapshot.
//
// `ovs-appctl revalidator/purge` deletes every flow of the datapath, at once,
// with the revalidators paused: after it, every frame is translated again by
// the tables as they are now. (`revalidator/wait` gives the same guarantee but
// waits for the revalidators' next periodic pass: about 500 ms per advance
// here, against 9 ms median for the purge.) The price is one upcall per flow
// for the frames that follow, on every bridge of that ovs-vswitchd. It talks to
// ovs-vswitchd's control socket, so the OFC must run beside the switches it
// syncs (the lab's own OFC tests and benchmarks). A remote OFC has no such
// call in OpenFlow: with the operator, each node's agent purges its own
// datapath before a VM resumes after its advance (src/agent/node-datapath.ts).
import { purgeDatapathFlows } from '../../ovs/datapath-purge.js';

/** Waits until the switches' datapaths forward by the flow tables as they are now. */
export interface DatapathSync {
  wait(): Promise<void>;
}

/** `revalidator/purge` on each ovs-vswitchd control socket (`<rundir>/ovs-vswitchd.ctl`). */
export class OvsRevalidatorSync implements DatapathSync {
  constructor(
    private readonly controlSockets: readonly string[],
    private readonly timeoutMs = 10_000,
  ) {
    if (controlSockets.length === 0) throw new Error('datapath sync needs at least one control socket');
  }

  async wait(): Promise<void> {
    await Promise.all(this.controlSockets.map((socket) => purgeDatapathFlows(socket, this.timeoutMs)));
  }
}
