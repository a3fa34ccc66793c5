/**
 * A minimal pcap writer for handing bytes to an independent decoder (tshark):
 * each payload becomes one TCP segment of one connection, wrapped in Ethernet
 * and IPv4 with correct checksums, so a dissector sees exactly what a switch
 * would receive on the wire. Only what the tests need: one direction, no
 * handshake (tshark dissects mid-stream segments), classic pcap format.
 */
import { writeFile } from 'node:fs/promises';

const PCAP_MAGIC = 0xa1b2c3d4;
const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 0x40000;
const ETHERTYPE_IPV4 = 0x0800;
const IPPROTO_TCP = 6;
const TCP_PSH_ACK = 0x18;
const ETH_LEN = 14;
const IPV4_LEN = 20;
const TCP_LEN = 20;
const MAX_TCP_PAYLOAD = 0xffff - IPV4_LEN - TCP_LEN;

export interface TcpStreamOptions {
  srcIp?: string;
  dstIp?: string;
  srcPort?: number;
  /** 6653 is OpenFlow's IANA port. */
  dstPort?: number;
}

/** RFC 1071 one's-complement sum of 16-bit words, folded and inverted. */
function internetChecksum(...parts: Buffer[]): number {
  const data = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2 === 1) sum += (data[data.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipBytes(ip: string): Buffer {
  const octets = ip.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new Error(`pcap: '${ip}' is not a dotted-quad IPv4 address`);
  }
  return Buffer.from(octets);
}

function frame(payload: Buffer, seq: number, o: Required<TcpStreamOptions>): Buffer {
  if (payload.length > MAX_TCP_PAYLOAD)
    throw new Error(`pcap: payload of ${payload.length} bytes exceeds one IPv4 packet`);
  const src = ipBytes(o.srcIp);
  const dst = ipBytes(o.dstIp);

  const tcp = Buffer.alloc(TCP_LEN);
  tcp.writeUInt16BE(o.srcPort, 0);
  tcp.writeUInt16BE(o.dstPort, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(1, 8); // ack
  tcp.writeUInt8((TCP_LEN / 4) << 4, 12);
  tcp.writeUInt8(TCP_PSH_ACK, 13);
  tcp.writeUInt16BE(0xffff, 14); // window
  const pseudo = Buffer.alloc(12);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 4);
  pseudo.writeUInt8(IPPROTO_TCP, 9);
  pseudo.writeUInt16BE(TCP_LEN + payload.length, 10);
  tcp.writeUInt16BE(internetChecksum(pseudo, tcp, payload), 16);

  const ip = Buffer.alloc(IPV4_LEN);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(IPV4_LEN + TCP_LEN + payload.length, 2);
  ip.writeUInt16BE(0x4000, 6); // don't fragment
  ip.writeUInt8(64, 8);
  ip.writeUInt8(IPPROTO_TCP, 9);
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);

  const eth = Buffer.alloc(ETH_LEN);
  Buffer.from('020000000002', 'hex').copy(eth, 0);
  Buffer.from('020000000001', 'hex').copy(eth, 6);
  eth.writeUInt16BE(ETHERTYPE_IPV4, 12);
  return Buffer.concat([eth, ip, tcp, payload]);
}

/** The pcap file bytes: one TCP segment per payload, in order, one millisecond apart. */
export function tcpStreamPcap(payloads: readonly Buffer[], options: TcpStreamOptions = {}): Buffer {
  const o: Required<TcpStreamOptions> = {
    srcIp: '10.0.0.1',
    dstIp: '10.0.0.2',
    srcPort: 40000,
    dstPort: 6653,
    ...options,
  };
  const header = Buffer.alloc(24);
  header.writeUInt32LE(PCAP_MAGIC, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(SNAPLEN, 16);
  header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
  const records: Buffer[] = [header];
  let seq = 1;
  payloads.forEach((payload, index) => {
    const packet = frame(payload, seq, o);
    seq += payload.length;
    const record = Buffer.alloc(16);
    record.writeUInt32LE(1_700_000_000, 0);
    record.writeUInt32LE(index * 1000, 4);
    record.writeUInt32LE(packet.length, 8);
    record.writeUInt32LE(packet.length, 12);
    records.push(record, packet);
  });
  return Buffer.concat(records);
}

export async function writeTcpStreamPcap(
  path: string,
  payloads: readonly Buffer[],
  options?: TcpStreamOptions,
): Promise<void> {
  await writeFile(path, tcpStreamPcap(payloads, options));
}
