// Numbered UDP datagrams between hosts of the OVS fixture, for tests that must
// tell held, released, reordered and lost packets apart at the receiving
// application (the sequence numbers) and at its kernel (/proc/net/snmp).
import { pinNeighbours } from '../../support/ovs.js';
import type { OvsHost } from '../../support/ovs.js';
import { waitUntil } from '../ofc/ofc-lab.js';

/**
 * Prints `<seq>` for each datagram (the payload is `<seq> ` and padding), and
 * 'ready' once bound. A release re-injects a whole buffer as one burst, so the
 * socket gets a receive buffer that holds one (4 MiB, the machine's
 * net.core.rmem_max): with the default ~200 KiB the kernel drops most of such
 * a burst at the socket (Udp RcvbufErrors), after the network delivered it.
 */
const RECEIVER = `
const socket = require('node:dgram').createSocket('udp4');
socket.on('message', (msg) => process.stdout.write(msg.toString('latin1', 0, msg.indexOf(32)) + '\\n'));
socket.bind(Number(process.argv[1]), () => {
  socket.setRecvBufferSize(4 * 1024 * 1024);
  process.stdout.write('ready\\n');
});
`;

/** Sends datagrams first..last, padded to size, in bursts of 5 every 5 ms (about 1000 per second). */
const SENDER = `
const [host, port, first, last, size] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const socket = require('node:dgram').createSocket('udp4');
let seq = first;
const burst = () => {
  let pending = 0;
  for (let i = 0; i < 5 && seq <= last; i++, seq++) {
    const payload = Buffer.alloc(Math.max(size, 16), 120);
    payload.write(seq + ' ', 'latin1');
    pending++;
    socket.send(payload, port, host, () => { if (--pending === 0) setTimeout(next, 5); });
  }
};
const next = () => (seq > last ? socket.close() : burst());
next();
`;

export interface UdpSink {
  /** Sequence numbers in arrival order. */
  readonly received: number[];
  /** The receiving host's kernel UDP counters (InDatagrams, RcvbufErrors, ...), for failure messages. */
  kernelCounters(): Promise<string>;
  stop(): void;
}

export async function startUdpSink(host: OvsHost, port: number): Promise<UdpSink> {
  const received: number[] = [];
  let ready = false;
  let pending = '';
  const child = host.spawn([process.execPath, '-e', RECEIVER, String(port)]);
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'ready') ready = true;
      else received.push(Number(line));
    }
  });
  await waitUntil(`the UDP receiver in ${host.name}`, () => ready);
  return {
    received,
    async kernelCounters() {
      const snmp = (await host.exec(['cat', '/proc/net/snmp'])).stdout;
      return snmp
        .split('\n')
        .filter((line) => line.startsWith('Udp:'))
        .join(' | ');
    },
    stop: () => child.kill('SIGTERM'),
  };
}

/** Sends datagrams numbered first..last of `size` bytes from `from` to `to`; resolves when all are sent. */
export async function sendDatagrams(
  from: OvsHost,
  to: OvsHost,
  port: number,
  first: number,
  last: number,
  size: number,
): Promise<void> {
  await from.exec([
    process.execPath,
    '-e',
    SENDER,
    to.ip,
    String(port),
    String(first),
    String(last),
    String(size),
  ]);
}

/** Static neighbours (no ARP while packets are held) and one datagram each way, so NORMAL knows both MACs. */
export async function introduce(a: OvsHost, b: OvsHost): Promise<void> {
  await pinNeighbours([a, b]);
  await sendDatagrams(a, b, 9, 1, 1, 16);
  await sendDatagrams(b, a, 9, 1, 1, 16);
}
