// The checker's arithmetic on statuses built by hand, for the cases a running
// lab produces only by chance: money in flight on either side of the receipt,
// money destroyed, reused sequence numbers; and quiesce() against banks that
// answer from a script, for a round of reads that only looks settled.
// bank.test.ts checks it on real VMs.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BankEndpoint, BankStatus, ChannelStatus } from '../../../lab/guest/checker.js';
import { checkBank, checkInvariant } from '../../../lab/guest/checker.js';

function bank(node: string, balances: number[], channel: Partial<ChannelStatus>, conflicts = 0): BankStatus {
  return {
    node,
    balances,
    initial: 200,
    paused: false,
    channels: [
      {
        peer: node === 'a' ? 'b' : 'a',
        transport: 'udp',
        nextSeq: 1,
        unacked: [],
        appliedUpTo: 0,
        appliedAbove: [],
        ...channel,
      },
    ],
    counters: {
      sent: 0,
      acked: 0,
      received: 0,
      duplicates: 0,
      conflicts,
      retransmits: 0,
      malformed: 0,
      connects: 0,
    },
  };
}

/** Transfers into account 0, as [seq, amount]. */
const unacked = (...transfers: [number, number][]) =>
  transfers.map(([seq, amount]) => ({ seq, account: 0, amount }));

describe('bank invariant checker', () => {
  it('counts an unacknowledged transfer as in flight only until the receiver has applied it', () => {
    const sent = { nextSeq: 2, unacked: [{ seq: 1, account: 0, amount: 30 }] };
    const notYetApplied = checkInvariant([bank('a', [70, 100], sent), bank('b', [100, 100], {})]);
    expect(notYetApplied).toMatchObject({ ok: true, total: 400, inFlight: 30 });
    const appliedNotAcked = checkInvariant([
      bank('a', [70, 100], sent),
      bank('b', [130, 100], { appliedUpTo: 1 }),
    ]);
    expect(appliedNotAcked).toMatchObject({ ok: true, total: 400, inFlight: 0 });
    // UDP reordered: seq 2 arrived before seq 1; only seq 1 is still money in flight.
    const reordered = checkInvariant([
      bank('a', [50, 100], {
        nextSeq: 3,
        unacked: unacked([1, 30], [2, 20]),
      }),
      bank('b', [120, 100], { appliedAbove: [2] }),
    ]);
    expect(reordered).toMatchObject({ ok: true, total: 400, inFlight: 30 });
  });

  it('reports money destroyed, acknowledgements without receipts, receipts without sends and reused sequence numbers', () => {
    const destroyed = checkInvariant([bank('a', [70, 100], { nextSeq: 2 }), bank('b', [100, 100], {})]);
    expect(destroyed.ok).toBe(false);
    expect(destroyed.violations).toEqual([
      'b has not applied a→b udp transfer(s) 1, which a saw acknowledged: an acknowledgement without its receipt (b lost state)',
      'total is 370 (balances 370 + in flight 0), expected 400: money destroyed',
    ]);

    // b lost transfers 2-4 and 7 of 8, after a had its acknowledgements; 5 and 6 are still in flight.
    const forgotten = checkInvariant([
      bank('a', [100, 100], {
        nextSeq: 9,
        unacked: unacked([5, 1], [6, 1]),
      }),
      bank('b', [100, 100], { appliedUpTo: 1, appliedAbove: [8] }),
    ]);
    expect(forgotten.violations[0]).toBe(
      'b has not applied a→b udp transfer(s) 2-4, 7, which a saw acknowledged: an acknowledgement without its receipt (b lost state)',
    );

    const torn = checkInvariant([
      bank('a', [100, 100], { nextSeq: 1 }),
      bank('b', [130, 100], { appliedUpTo: 1 }, 2),
    ]);
    expect(torn.violations).toEqual([
      'b applied a→b udp transfer 1, but a has issued only up to 0: a receipt without its send (inconsistent cut)',
      'b refused 2 transfer(s) reusing a sequence number it had applied for a different transfer',
      'total is 430 (balances 430 + in flight 0), expected 400: money created',
    ]);
  });
});

describe('quiesce', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const server of servers.splice(0)) server.close();
  });

  /** A bank on loopback whose GET /status answers each status in turn, then the last one for good. */
  async function scriptedBank(node: string, script: BankStatus[]): Promise<BankEndpoint> {
    let reads = 0;
    const server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/status') {
        const status = script[Math.min(reads++, script.length - 1)];
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify(status));
        return;
      }
      res.statusCode = 204;
      res.end();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { node, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  it('does not take a round that only looks settled: the receiver was read before its last receipt', async () => {
    // a's transfer 1 (30) is acknowledged before a is read; b was read just before applying it.
    const a = await scriptedBank('a', [bank('a', [70, 100], { nextSeq: 2 })]);
    const b = await scriptedBank('b', [bank('b', [100, 100], {}), bank('b', [130, 100], { appliedUpTo: 1 })]);
    const report = await checkBank([a, b]);
    expect(report).toMatchObject({ ok: true, total: 400, inFlight: 0, unconfirmedRounds: 1 });
  });
});
