// Checks the bank's invariant across every VM of the lab (the workload in
// bank/). At a consistent cut of the whole service:
//
//   Σ balances + Σ transfers a sender still holds unacknowledged that the
//   receiver has not applied = Σ initial balances
//
// no receiver has applied a sequence number its sender never issued, and every
// transfer a sender saw acknowledged was applied by its receiver (it acknowledges
// only after applying). A restore from a cut that is not causally consistent
// breaks the second rule at once (a receipt without its send: money created)
// and the first one after the service quiesces; a receiver that ran on from an
// older state than one it acknowledged from (two copies of a VM running, say)
// breaks the third; the bank also counts a "conflict" when a sender reuses a
// sequence number for a different transfer.
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Transfer {
  seq: number;
  account: number;
  amount: number;
}

export interface ChannelStatus {
  peer: string;
  transport: 'tcp' | 'udp';
  nextSeq: number;
  unacked: Transfer[];
  appliedUpTo: number;
  appliedAbove: number[];
}

export interface BankStatus {
  node: string;
  balances: number[];
  initial: number;
  paused: boolean;
  channels: ChannelStatus[];
  counters: {
    sent: number;
    acked: number;
    received: number;
    duplicates: number;
    conflicts: number;
    retransmits: number;
    malformed: number;
    connects: number;
  };
}

export interface CheckReport {
  ok: boolean;
  /** Σ balances + money in flight. */
  total: number;
  expected: number;
  inFlight: number;
  violations: string[];
  /**
   * Rounds of reads (checkBank) that looked settled and were not: the round
   * after found another state, a receipt that came after its receiver was read.
   */
  unconfirmedRounds?: number;
}

/** Checks statuses read at one consistent cut (e.g. after quiesce()). */
export function checkInvariant(statuses: readonly BankStatus[], expected?: number): CheckReport {
  const byNode = new Map(statuses.map((s) => [s.node, s]));
  const violations: string[] = [];
  let balances = 0;
  let inFlight = 0;
  let initial = 0;
  for (const status of statuses) {
    initial += status.initial;
    balances += status.balances.reduce((a, b) => a + b, 0);
    if (status.counters.conflicts > 0) {
      violations.push(
        `${status.node} refused ${status.counters.conflicts} transfer(s) reusing a sequence number it had applied for a different transfer`,
      );
    }
    for (const channel of status.channels) {
      const receiver = byNode
        .get(channel.peer)
        ?.channels.find((c) => c.peer === status.node && c.transport === channel.transport);
      if (!receiver) {
        violations.push(
          `${status.node} sends to ${channel.peer} over ${channel.transport}, but there is no status for it`,
        );
        continue;
      }
      const applied = (seq: number) => seq <= receiver.appliedUpTo || receiver.appliedAbove.includes(seq);
      for (const t of channel.unacked) if (!applied(t.seq)) inFlight += t.amount;
      // The receiver's view of this channel: anything beyond what the sender issued is a receipt without a send.
      const issued = channel.nextSeq - 1;
      const highestApplied = Math.max(receiver.appliedUpTo, ...receiver.appliedAbove);
      if (highestApplied > issued) {
        violations.push(
          `${channel.peer} applied ${status.node}→${channel.peer} ${channel.transport} transfer ${highestApplied}, but ${status.node} has issued only up to ${issued}: a receipt without its send (inconsistent cut)`,
        );
      }
      const unacked = new Set(channel.unacked.map((t) => t.seq));
      const lost: number[] = [];
      for (let seq = receiver.appliedUpTo + 1; seq <= issued; seq++) {
        if (!unacked.has(seq) && !applied(seq)) lost.push(seq);
      }
      if (lost.length > 0) {
        violations.push(
          `${channel.peer} has not applied ${status.node}→${channel.peer} ${channel.transport} transfer(s) ${ranges(lost)}, which ${status.node} saw acknowledged: an acknowledgement without its receipt (${channel.peer} lost state)`,
        );
      }
    }
  }
  const total = balances + inFlight;
  const want = expected ?? initial;
  if (total !== want) {
    violations.push(
      `total is ${total} (balances ${balances} + in flight ${inFlight}), expected ${want}: money ${total > want ? 'created' : 'destroyed'}`,
    );
  }
  return { ok: violations.length === 0, total, expected: want, inFlight, violations };
}

/** Ascending numbers as ranges: 3-5, 9. */
function ranges(numbers: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < numbers.length;) {
    let j = i;
    while (j + 1 < numbers.length && numbers[j + 1] === (numbers[j] as number) + 1) j++;
    parts.push(i === j ? `${numbers[i]}` : `${numbers[i]}-${numbers[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/** How to reach one VM's bank status endpoint (port 7070). */
export interface BankEndpoint {
  node: string;
  /** Base URL, e.g. http://10.0.0.1:7070 (host part ignored when socketPath is set). */
  url: string;
  /** A unix socket forwarded to the endpoint, for VMs on a network the checker cannot route to. */
  socketPath?: string;
}

function call(
  endpoint: BankEndpoint,
  method: 'GET' | 'POST',
  path: string,
  timeoutMs = 5000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, endpoint.url);
    const req = request(
      {
        method,
        path: url.pathname,
        host: url.hostname,
        port: url.port,
        socketPath: endpoint.socketPath,
        timeout: timeoutMs,
        // A connection per request: a kept-alive one may predate a restore of
        // the VM, whose image knows nothing of it, and would hang.
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () =>
          res.statusCode && res.statusCode < 300
            ? resolve(body)
            : reject(
                new Error(`bank ${endpoint.node}: ${method} ${path} answered ${res.statusCode}: ${body}`),
              ),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`bank ${endpoint.node}: ${method} ${path} timed out`)));
    req.on('error', (error) =>
      reject(new Error(`bank ${endpoint.node}: ${method} ${path}: ${error.message}`)),
    );
    req.end();
  });
}

/** Reads one status, retrying while the VM is still booting or just resumed. */
export async function readStatus(endpoint: BankEndpoint, retryForMs = 0): Promise<BankStatus> {
  const deadline = Date.now() + retryForMs;
  for (;;) {
    try {
      return JSON.parse(await call(endpoint, 'GET', '/status')) as BankStatus;
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await sleep(500);
    }
  }
}

export async function setPaused(endpoints: readonly BankEndpoint[], paused: boolean): Promise<void> {
  await Promise.all(endpoints.map((e) => call(e, 'POST', paused ? '/pause' : '/unpause')));
}

/** How long a check waits for the banks to settle before it reads them as they are. */
const SETTLE_TIMEOUT_MS = 30_000;

/** What a settled bank's state is: its balances and channels (its counters still count late duplicates). */
const ledgerOf = (statuses: readonly BankStatus[]) =>
  JSON.stringify(statuses.map((s) => [s.node, s.balances, s.channels]));

/**
 * Brings the service to a cut that is consistent by construction: no new
 * transfers, and every transfer in flight either acknowledged or visibly stuck.
 * Waits until no sender holds unacknowledged transfers in two rounds of reads
 * in a row that find the same state, or until `timeoutMs` passes; returns the
 * last round. Leaves the banks paused.
 *
 * One settled round is not enough: the reads of a round are served at
 * different moments, so a receiver read just before it applied the last
 * transfer and its sender read just after the acknowledgement came make a round
 * that looks settled with that transfer in neither place (money "destroyed").
 * Once a round is settled nothing moves any more (paused senders with nothing
 * to resend), so the next round sees every receipt, and finding it unchanged
 * shows that the first one was whole.
 */
export async function quiesce(
  endpoints: readonly BankEndpoint[],
  timeoutMs = SETTLE_TIMEOUT_MS,
): Promise<BankStatus[]> {
  return (await settle(endpoints, timeoutMs)).statuses;
}

async function settle(
  endpoints: readonly BankEndpoint[],
  timeoutMs: number,
): Promise<{ statuses: BankStatus[]; unconfirmedRounds: number }> {
  await setPaused(endpoints, true);
  const deadline = Date.now() + timeoutMs;
  let settledBefore: string | undefined;
  let unconfirmedRounds = 0;
  for (;;) {
    const statuses = await Promise.all(endpoints.map((e) => readStatus(e, 5000)));
    const settled = statuses.every((s) => s.channels.every((c) => c.unacked.length === 0));
    const ledger = settled ? ledgerOf(statuses) : undefined;
    if (ledger !== undefined && ledger === settledBefore) return { statuses, unconfirmedRounds };
    if (settledBefore !== undefined) unconfirmedRounds++;
    if (Date.now() >= deadline) return { statuses, unconfirmedRounds };
    settledBefore = ledger;
    // A round that just settled is confirmed at once; one still moving is given time.
    if (!settled) await sleep(500);
  }
}

/** Quiesces, checks, and lets the banks carry on. */
export async function checkBank(endpoints: readonly BankEndpoint[], expected?: number): Promise<CheckReport> {
  const { statuses, unconfirmedRounds } = await settle(endpoints, SETTLE_TIMEOUT_MS);
  try {
    return { ...checkInvariant(statuses, expected), unconfirmedRounds };
  } finally {
    await setPaused(endpoints, false);
  }
}
