// The Go middlebox on its own, in a network namespace of this test: frames
// are written to and read from its tap with AF_PACKET sockets (python3), and
// its control protocol is spoken over the unix socket directly.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { middleboxBinary } from '../../../src/ofc/buffer/middlebox.js';
import { NetworkNamespace, uniqueTag } from '../../../lab/ovs/netns.js';
import { requireTool } from '../../support/require-tool.js';
import { range, waitUntil } from './ofc-lab.js';

const TAP = 'vbuftest0';
const RECEIVER_MAC = '02:00:00:00:00:0b';
const SENDER_MAC = '02:00:00:00:00:0a';

/** Writes frames `<seq>` for a MAC into the interface, tagged 802.1ad (VLAN id = ingress port 7) unless 'plain'. */
const SEND_FRAMES = `
import socket, sys
iface, dst, src, first, last, size, kind = sys.argv[1:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
tag = b'' if kind == 'plain' else b'\\x88\\xa8\\x00\\x07'
for seq in range(int(first), int(last) + 1):
    head = bytes.fromhex(dst.replace(':', '')) + bytes.fromhex(src.replace(':', '')) + tag + b'\\x08\\x00'
    s.send(head + str(seq).encode().ljust(int(size) - len(head), b' '))
`;

/** Prints the sequence number of every frame for a MAC that the interface receives from the tap, until killed. */
const SNIFF_FRAMES = `
import socket, sys
iface, dst = sys.argv[1:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
print('ready', flush=True)
want = bytes.fromhex(dst.replace(':', ''))
while True:
    frame, address = s.recvfrom(65536)
    if address[2] != socket.PACKET_OUTGOING and frame[:6] == want:
        # The kernel moves a received VLAN tag into metadata: the frame may come without it.
        rest = frame[16:] if frame[12:14] == b'\\x88\\xa8' else frame[12:]
        print(rest[2:].decode().strip(), flush=True)
`;

class Control {
  readonly lines: string[] = [];
  closed = false;
  private constructor(private readonly socket: Socket) {
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<Control> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path, () => resolve(new Control(socket)));
      socket.once('error', reject);
    });
  }

  async request(line: string): Promise<string> {
    const before = this.lines.filter((l) => !l.startsWith('event ')).length;
    this.socket.write(`${line}\n`);
    await waitUntil(
      `a reply to '${line}'`,
      () => this.lines.filter((l) => !l.startsWith('event ')).length > before,
    );
    return this.lines.filter((l) => !l.startsWith('event ')).at(-1)!;
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('violin-middlebox', () => {
  let netns: NetworkNamespace | undefined;
  let middlebox: ChildProcess | undefined;
  let sniffer: ChildProcess | undefined;
  let dir = '';
  const controls: Control[] = [];

  beforeAll(() => {
    requireTool('python3', 'Debian package python3 (writes raw frames into the tap)');
  });

  afterEach(async () => {
    for (const control of controls.splice(0)) control.close();
    sniffer?.kill('SIGTERM');
    if (middlebox && middlebox.exitCode === null) {
      middlebox.kill('SIGTERM');
      await new Promise((resolve) => middlebox!.once('exit', resolve));
    }
    await netns?.delete();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function start(limitBytes: number) {
    const binary = await middleboxBinary();
    netns = await NetworkNamespace.create(`vt-mbox-${uniqueTag()}`);
    dir = mkdtempSync(join(tmpdir(), 'violin-mbox-'));
    const socketPath = join(dir, 'control.sock');
    middlebox = netns.spawn([binary, '-tap', TAP, '-control', socketPath, '-limit', String(limitBytes)]);
    let out = '';
    middlebox.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitUntil('the middlebox to be ready', () => out.includes('ready\n'));
    const control = await Control.connect(socketPath);
    controls.push(control);
    return { control, socketPath };
  }

  async function sniff() {
    const seen: string[] = [];
    sniffer = netns!.spawn(['python3', '-c', SNIFF_FRAMES, TAP, RECEIVER_MAC]);
    sniffer.stdout?.on('data', (chunk: Buffer) => seen.push(...chunk.toString().split('\n').filter(Boolean)));
    await waitUntil('the sniffer', () => seen.includes('ready'));
    return () => seen.filter((l) => l !== 'ready').map(Number);
  }

  async function send(first: number, last: number, size: number, kind: 'tagged' | 'plain' = 'tagged') {
    await netns!.exec([
      'python3',
      '-c',
      SEND_FRAMES,
      TAP,
      RECEIVER_MAC,
      SENDER_MAC,
      String(first),
      String(last),
      String(size),
      kind,
    ]);
  }

  function stat(line: string, key: string): number {
    return Number(new RegExp(`${key}=(\\d+)`).exec(line)?.[1]);
  }

  it('holds tagged frames per MAC, ignores the rest, and replays them in order on release', async () => {
    const { control } = await start(1 << 20);
    const received = await sniff();
    await send(1, 5, 100);
    await send(100, 101, 100, 'plain');
    await waitUntil('5 held', async () => stat(await control.request('stats'), 'held_frames') === 5);
    const held = await control.request('stats');
    expect(stat(held, 'held_bytes')).toBe(500);
    expect(stat(held, 'ignored')).toBeGreaterThanOrEqual(2);
    expect(received()).toEqual([]);
    expect(await control.request(`release ${RECEIVER_MAC}`)).toBe('ok 5');
    // Later frames for a released MAC pass straight through, after the queue.
    await send(6, 8, 100);
    await waitUntil('8 frames back', () => received().length >= 8);
    expect(received()).toEqual(range(1, 8));
    const after = await control.request('stats');
    expect([
      stat(after, 'held_frames'),
      stat(after, 'frames_replayed'),
      stat(after, 'frames_passed'),
    ]).toEqual([0, 5, 3]);
    expect(stat(after, 'peak_bytes')).toBe(500);
  });

  it('at its limit releases everything in order, passes later frames and reports the event', async () => {
    const { control } = await start(1000);
    const received = await sniff();
    await send(1, 12, 100);
    await waitUntil('12 frames back', () => received().length >= 12);
    expect(received()).toEqual(range(1, 12));
    await waitUntil('the limit event', () => control.lines.includes('event limit 1000'));
    const stats = await control.request('stats');
    expect([stat(stats, 'held_frames'), stat(stats, 'peak_bytes'), stat(stats, 'frames_replayed')]).toEqual([
      0, 1000, 10,
    ]);
  });

  it('writes everything it holds back when it is told to stop (SIGTERM)', async () => {
    const { control } = await start(1 << 20);
    const received = await sniff();
    await send(1, 4, 100);
    await waitUntil('4 held', async () => stat(await control.request('stats'), 'held_frames') === 4);
    middlebox!.kill('SIGTERM');
    await waitUntil('the middlebox to exit', () => middlebox!.exitCode !== null);
    expect(middlebox!.exitCode).toBe(0);
    await waitUntil('4 frames back', () => received().length >= 4);
    expect(received()).toEqual(range(1, 4));
  });

  it('closes a connection that sends a bad line and keeps serving the others', async () => {
    const { control, socketPath } = await start(1 << 20);
    const other = await Control.connect(socketPath);
    controls.push(other);
    expect(await control.request('frobnicate now')).toBe('err unknown command "frobnicate"');
    await waitUntil('the bad connection to close', () => control.closed);
    expect(await other.request('release not-a-mac')).toMatch(/^err not an Ethernet MAC/);
    const third = await Control.connect(socketPath);
    controls.push(third);
    expect(await third.request('stats')).toMatch(/^ok held_frames=0 /);
    expect(await third.request('shutdown')).toBe('ok shutting down');
    await waitUntil('the middlebox to exit', () => middlebox!.exitCode !== null);
    expect(middlebox!.exitCode).toBe(0);
  });
});
