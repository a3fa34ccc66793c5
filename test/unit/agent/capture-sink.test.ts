// The capture sink on its own, with a unix socket client standing in for
// QEMU's migration: through socat into the store's file (the normal path), and
// through the agent when socat is missing.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { requireTool } from '../../support/require-tool.js';
import { IncompleteStreamError, openCaptureSink } from '../../../src/agent/capture-sink.js';
import { bundleImageStore } from '../../../src/agent/image-store.js';
import type { QmpEvent } from '../../../src/agent/qmp/client.js';

const vm = { namespace: 'default', name: 'vm-a' };

function migration(status: string): QmpEvent {
  return { event: 'MIGRATION', data: { status }, timestampMs: Date.now() };
}

/** Sends `bytes` to the sink's socket as QEMU would, and closes the connection. */
async function sendStream(socketPath: string, bytes: Buffer): Promise<void> {
  const socket = createConnection(socketPath);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.end(bytes, resolve);
  });
}

let dir: string;
let storageLocation: string;
let log: string[];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sink-'));
  storageLocation = pathToFileURL(join(dir, 'bundles')).href;
  log = [];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (snapshotId: string, finished: Promise<QmpEvent>) =>
  openCaptureSink(
    bundleImageStore,
    { storageLocation, snapshotId, vm },
    join(dir, 'migrate.sock'),
    finished,
    (line) => log.push(line),
  );

it('stores the whole stream through socat once the migration completed', async () => {
  requireTool('socat', 'Debian package socat');
  const stream = randomBytes(3 * 2 ** 20 + 5);
  const sink = await open('snap-1', Promise.resolve(migration('completed')));
  try {
    await sendStream(join(dir, 'migrate.sock'), stream);
    expect(await sink.stored).toEqual({
      path: 'images/default/vm-a.img',
      bytes: stream.byteLength,
      digest: `sha256:${createHash('sha256').update(stream).digest('hex')}`,
    });
  } finally {
    await sink.close();
  }
  expect(log).toEqual([]); // socat was there: no word of the slower path
});

it('a stream whose migration failed is no image: nothing is left in the bundle', async () => {
  requireTool('socat', 'Debian package socat');
  const sink = await open('snap-2', Promise.resolve(migration('failed')));
  try {
    await sendStream(join(dir, 'migrate.sock'), randomBytes(100_000));
    await expect(sink.stored).rejects.toBeInstanceOf(IncompleteStreamError);
  } finally {
    await sink.close();
  }
  expect(await readdir(join(dir, 'bundles', 'snap-2', 'images', 'default'))).toEqual([]);
});

it('closing a sink nobody connected to stops socat and stores nothing', async () => {
  requireTool('socat', 'Debian package socat');
  const sink = await open('snap-3', new Promise<QmpEvent>(() => undefined));
  await sink.close();
  await expect(sink.stored).rejects.toThrow(
    /socat receiving the migration stream exited with 143: .*exiting on signal 15/,
  );
});

it('without socat, the agent receives the stream itself and says so', async () => {
  const path = process.env.PATH;
  process.env.PATH = join(dir, 'no-tools');
  let sink;
  try {
    sink = await open('snap-4', Promise.resolve(migration('completed')));
  } finally {
    process.env.PATH = path;
  }
  const stream = randomBytes(200_000);
  try {
    await sendStream(join(dir, 'migrate.sock'), stream);
    expect((await sink.stored).digest).toBe(`sha256:${createHash('sha256').update(stream).digest('hex')}`);
  } finally {
    await sink.close();
  }
  expect(log).toEqual([
    'agent: socat is not installed (Debian package socat); captures stream through the agent, slower',
  ]);
});
