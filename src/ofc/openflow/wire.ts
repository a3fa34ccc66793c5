import { isIPv4, isIPv6 } from 'node:net';

import { OpenFlowDecodeError, OpenFlowEncodeError } from './types.js';

/**
 * A bounds-checked cursor over one message. Every read names what it reads, so
 * a short message fails with "truncated <what>" and the absolute offset instead
 * of a RangeError from Buffer.
 */
export class Reader {
  private pos = 0;

  constructor(
    private readonly buf: Buffer,
    /** Offset of buf[0] within the whole message, for error reports. */
    private readonly base = 0,
  ) {}

  get offset(): number {
    return this.base + this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  fail(reason: string, at = this.offset): never {
    throw new OpenFlowDecodeError(reason, at);
  }

  private need(n: number, what: string): void {
    if (this.remaining < n) this.fail(`truncated ${what}: needs ${n} bytes, ${this.remaining} left`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf.readUInt8(this.pos++);
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(what: string): bigint {
    this.need(8, what);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = Buffer.from(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return v;
  }

  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }

  /** A reader over the next n bytes, consumed from this one. */
  sub(n: number, what: string): Reader {
    this.need(n, what);
    const r = new Reader(this.buf.subarray(this.pos, this.pos + n), this.offset);
    this.pos += n;
    return r;
  }

  rest(): Buffer {
    return this.bytes(this.remaining, 'rest');
  }

  /** A fixed-size NUL-padded string field. */
  fixedString(n: number, what: string): string {
    const raw = this.bytes(n, what);
    const end = raw.indexOf(0);
    return raw.subarray(0, end === -1 ? n : end).toString('latin1');
  }

  /** Fixed-size structures must not carry trailing bytes. */
  end(what: string): void {
    if (this.remaining !== 0) this.fail(`${this.remaining} unexpected trailing bytes after ${what}`);
  }
}

/** Builds a message from parts; checks every integer fits its field before writing it. */
export class Writer {
  private readonly parts: Buffer[] = [];
  private size = 0;

  get length(): number {
    return this.size;
  }

  private push(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  u8(v: number, what: string): this {
    const b = Buffer.alloc(1);
    b.writeUInt8(checkUint(v, 8, what));
    return this.push(b);
  }

  u16(v: number, what: string): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(checkUint(v, 16, what));
    return this.push(b);
  }

  u32(v: number, what: string): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(checkUint(v, 32, what));
    return this.push(b);
  }

  u64(v: bigint, what: string): this {
    if (typeof v !== 'bigint' || v < 0n || v > 0xffffffffffffffffn) {
      throw new OpenFlowEncodeError(`${what} must be a 64-bit unsigned bigint, got ${String(v)}`);
    }
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    return this.push(b);
  }

  bytes(b: Buffer): this {
    return this.push(b);
  }

  zeros(n: number): this {
    return this.push(Buffer.alloc(n));
  }

  /** Zero bytes up to the next multiple of 8, counted from the start of this writer. */
  padTo8(): this {
    return this.zeros(pad8(this.size) - this.size);
  }

  fixedString(s: string, n: number, what: string): this {
    const b = Buffer.from(s, 'latin1');
    if (b.length >= n || b.includes(0)) {
      throw new OpenFlowEncodeError(
        `${what} must be at most ${n - 1} latin1 characters without NUL, got '${s}'`,
      );
    }
    return this.push(Buffer.concat([b, Buffer.alloc(n - b.length)]));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.parts, this.size);
  }
}

export function pad8(n: number): number {
  return (n + 7) & ~7;
}

export function checkUint(v: number, bits: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 2 ** bits - 1) {
    throw new OpenFlowEncodeError(`${what} must be an integer in 0..${2 ** bits - 1}, got ${String(v)}`);
  }
  return v;
}

const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function macToBytes(mac: string, what: string): Buffer {
  if (typeof mac !== 'string' || !MAC_PATTERN.test(mac)) {
    throw new OpenFlowEncodeError(`${what} must be a MAC like aa:bb:cc:dd:ee:ff, got '${String(mac)}'`);
  }
  return Buffer.from(mac.replaceAll(':', ''), 'hex');
}

export function bytesToMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function ipv4ToBytes(ip: string, what: string): Buffer {
  if (typeof ip !== 'string' || !isIPv4(ip)) {
    throw new OpenFlowEncodeError(`${what} must be a dotted-quad IPv4 address, got '${String(ip)}'`);
  }
  return Buffer.from(ip.split('.').map(Number));
}

export function bytesToIpv4(b: Buffer): string {
  return [...b].join('.');
}

export function ipv6ToBytes(ip: string, what: string): Buffer {
  if (typeof ip !== 'string' || !isIPv6(ip)) {
    throw new OpenFlowEncodeError(`${what} must be an IPv6 address, got '${String(ip)}'`);
  }
  let text = ip;
  // An embedded dotted quad (::ffff:1.2.3.4) stands for the last two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const v4 = ipv4ToBytes(dotted[1], what);
    text = `${text.slice(0, dotted.index)}${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? 0 : 8 - headGroups.length - tailGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** RFC 5952 text: lower case, leading zeros dropped, the first longest run (≥2) of zero groups as '::'. */
export function bytesToIpv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // Like inet_ntop (and so OVS): IPv4-compatible and IPv4-mapped addresses end in a dotted quad.
  if (bestStart === 0 && (bestLen === 6 || (bestLen === 5 && groups[5] === 0xffff))) {
    return `::${bestLen === 5 ? 'ffff:' : ''}${bytesToIpv4(b.subarray(12, 16))}`;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
