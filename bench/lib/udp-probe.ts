// The traffic of the PACKET_IN benchmark, as two small Node programs run
// inside the host namespaces: a sender that stamps each datagram with
// process.hrtime (CLOCK_MONOTONIC, one clock for every process on the
// machine) and a receiver that turns the stamps into one-way latencies.

/**
 * argv: host port count ratePps [payloadBytes=64] (ratePps 0 = as fast as the
 * socket takes them). Prints the send duration in ms.
 */
export const SENDER = `
const dgram = require('node:dgram');
const [host, port, count, rate, size] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const socket = dgram.createSocket('udp4');
const payload = Buffer.alloc(Math.max(12, size || 64));
const started = process.hrtime.bigint();
let seq = 0;
const gapNs = rate > 0 ? BigInt(Math.round(1e9 / rate)) : 0n;
function sendNext() {
  if (seq >= count) {
    socket.close(() => process.stdout.write(String(Number(process.hrtime.bigint() - started) / 1e6) + '\\n'));
    return;
  }
  payload.writeUInt32BE(seq, 0);
  payload.writeBigUInt64BE(process.hrtime.bigint(), 4);
  seq++;
  socket.send(payload, port, host, () => {
    if (gapNs === 0n) return sendNext();
    const due = started + gapNs * BigInt(seq);
    const waitMs = Number(due - process.hrtime.bigint()) / 1e6;
    if (waitMs > 1) setTimeout(sendNext, waitMs); else setImmediate(sendNext);
  });
}
sendNext();
`;

/**
 * argv: port. Prints 'ready', then on SIGTERM one JSON line:
 * { received, firstNs, lastNs, latenciesUs[] }.
 */
export const RECEIVER = `
const dgram = require('node:dgram');
const socket = dgram.createSocket('udp4');
const latencies = [];
let first = 0n, last = 0n;
socket.on('message', (msg) => {
  const now = process.hrtime.bigint();
  if (msg.length < 12) return;
  if (first === 0n) first = now;
  last = now;
  latencies.push(Number(now - msg.readBigUInt64BE(4)) / 1e3);
});
socket.bind(Number(process.argv[1]), () => {
  // As much as the kernel allows (net.core.rmem_max): bursts must be lost in
  // the switch or the controller, not in this socket.
  socket.setRecvBufferSize(4 << 20);
  process.stdout.write('ready\\n');
});
process.on('SIGTERM', () => {
  // exit only once the pipe has taken the whole line: a large result would be cut.
  process.stdout.write(JSON.stringify({ received: latencies.length, firstNs: String(first), lastNs: String(last), latenciesUs: latencies }) + '\\n', () => process.exit(0));
});
`;
