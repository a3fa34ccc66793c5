// The OFC-stack peer of the PACKET_IN benchmark, as its own process so that
// its CPU time is measured the same way as os-ken's and ovs-testcontroller's:
// the OFC's listener, sessions and codec, and an observer that answers every
// PACKET_IN with a PACKET_OUT output:NORMAL.
// Run with: node --import tsx bench/peers/violin-packet-echo.ts tcp:HOST:PORT
import { openflowPeer } from '../lib/peer-registry.js';

const listen = process.argv[2];
if (!listen) {
  process.stderr.write('usage: violin-packet-echo.ts tcp:HOST:PORT\n');
  process.exit(2);
}
const peer = await openflowPeer(listen, {
  bridgeConnected: async () => undefined,
  bridgeDisconnected: () => undefined,
  packetIn: (packet) => {
    packet.source.packetOut(packet.inPort, packet.frame);
  },
});
process.stdout.write(`listening on ${peer.target}\n`);
process.once('SIGTERM', () => {
  void peer.close().then(() => process.exit(0));
});
