// The TCP flow of the skew benchmark, as two small Node programs run inside
// the host namespaces. The sender writes at a steady application rate; the
// receiver records the arrival time (process.hrtime, one monotonic clock for
// every process on the machine) and size of every chunk it reads.

/** argv: host port bytesPerTick tickMs. Writes until killed. */
export const TCP_SENDER = `
const net = require('node:net');
const [host, port, bytes, tickMs] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const chunk = Buffer.alloc(bytes, 0x61);
const socket = net.connect(port, host, () => {
  process.stdout.write('connected\\n');
  setInterval(() => socket.write(chunk), tickMs);
});
socket.on('error', (error) => { process.stderr.write(String(error) + '\\n'); process.exit(1); });
`;

/** argv: port. Prints 'ready'; on SIGTERM one JSON line { arrivals: [[ns, bytes], ...] }. */
export const TCP_RECEIVER = `
const net = require('node:net');
const arrivals = [];
const server = net.createServer((socket) => {
  socket.on('data', (data) => arrivals.push([String(process.hrtime.bigint()), data.length]));
  socket.on('error', () => undefined);
});
server.listen(Number(process.argv[1]), () => process.stdout.write('ready\\n'));
process.on('SIGTERM', () => {
  // exit only once the pipe has taken the whole line: a large result would be cut.
  process.stdout.write(JSON.stringify({ arrivals }) + '\\n', () => process.exit(0));
});
`;
