// Where QEMU's migration stream goes during a capture, and how it becomes an
// image in the store.
//
// QEMU connects to a unix socket in the VM's folder. Normally a `socat` child
// listens there and writes the stream straight into the store's new file (its
// stdout is that file): QEMU's bytes go from its socket into the page cache
// without passing through this process, so the copy runs at what QEMU writes,
// like a bare `exec:cat > file` save, even when the agent waits for a core on
// a loaded machine. Once socat has seen the end of the stream and QEMU has
// reported the migration completed, the store hashes the file back from the
// page cache while it fsyncs it, then renames it into place: the image is
// durable and its digest known before the capture answers.
//
// Why not let QEMU write the file itself: QEMU 7.2 has no `file:` URI; `fd:`
// needs the descriptor passed over QMP (SCM_RIGHTS), which Node's sockets
// cannot send; and `exec:` runs a shell whose child QEMU SIGTERMs on close if
// it has not exited yet, so the file's tail can be lost without anyone seeing.
// socat is spawned without a shell and exits only after writing everything.
//
// Without socat, for a location without local files, or for a socket path
// socat's address syntax would misread, the agent receives the stream itself
// and streams it into the store (hashing on the way): correct, and slower.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ImageStore, StoredImage } from './image-store.js';
import type { QmpEvent } from './qmp/client.js';
import type { VmRef } from './types.js';

export interface CaptureTarget {
  storageLocation: string;
  snapshotId: string;
  vm: VmRef;
}

export interface CaptureSink {
  /** The `migrate` URI. */
  uri: string;
  /** The image, stored; rejects when the stream, the migration or the store fails. */
  stored: Promise<StoredImage>;
  /** Stops receiving: a sink still waiting for or reading a stream gives up. Idempotent. */
  close(): Promise<void>;
}

/** The migration did not complete, so its stream is no image: QEMU's own error says why. */
export class IncompleteStreamError extends Error {
  override readonly name = 'IncompleteStreamError';
}

/** socat's read size: one read takes whatever the socket holds, up to this. */
const SOCAT_BUFFER_BYTES = 1024 * 1024;
/**
 * How long socat waits for QEMU to connect. QEMU connects as soon as `migrate`
 * runs; this only ends a socat whose agent died before that, instead of it
 * listening for good.
 */
const SOCAT_ACCEPT_TIMEOUT_S = 120;
/** Characters socat's address syntax reads as such (options, parameters, dual addresses, quoting). */
const SOCAT_SPECIAL = /[,:!"'\\{}[\]\s]/;

/**
 * Opens the sink for one capture and resolves once QEMU can connect to it.
 * `finished` is the capture's final MIGRATION event: the image is stored only
 * if it says `completed`, so a stream cut short never becomes an image.
 */
export async function openCaptureSink(
  images: ImageStore,
  target: CaptureTarget,
  socketPath: string,
  finished: Promise<QmpEvent>,
  log: (line: string) => void,
): Promise<CaptureSink> {
  await rm(socketPath, { force: true });
  if (images.writesImageFiles(target.storageLocation) && !SOCAT_SPECIAL.test(socketPath)) {
    const sink = await openSocatSink(images, target, socketPath, finished);
    if (sink !== 'no socat') return sink;
    log('agent: socat is not installed (Debian package socat); captures stream through the agent, slower');
  }
  return openStreamSink(images, target, socketPath);
}

async function openSocatSink(
  images: ImageStore,
  target: CaptureTarget,
  socketPath: string,
  finished: Promise<QmpEvent>,
): Promise<CaptureSink | 'no socat'> {
  let child: ChildProcess | undefined;
  let exited: Promise<void> | undefined;
  let listening!: (outcome: 'listening' | 'no socat' | Error) => void;
  const ready = new Promise<'listening' | 'no socat' | Error>((resolve) => (listening = resolve));
  const fill = async (file: FileHandle) => {
    const socat = spawn(
      'socat',
      [
        '-d',
        '-d',
        '-u',
        '-b',
        String(SOCAT_BUFFER_BYTES),
        `UNIX-LISTEN:${socketPath},accept-timeout=${SOCAT_ACCEPT_TIMEOUT_S}`,
        'STDOUT',
      ],
      { stdio: ['ignore', file.fd, 'pipe'] },
    );
    child = socat;
    let stderr = '';
    // stdio 'pipe' always gives a stderr stream; the type cannot know.
    const diagnostics = socat.stderr as Readable;
    diagnostics.setEncoding('utf8');
    diagnostics.on('data', (text: string) => {
      stderr += text;
      if (stderr.includes('listening on')) listening('listening');
    });
    exited = new Promise<void>((resolve, reject) => {
      socat.once('error', (error: NodeJS.ErrnoException) => {
        listening(error.code === 'ENOENT' ? 'no socat' : error);
        reject(error);
      });
      socat.once('exit', (code, signal) => {
        const failure = new Error(
          `socat receiving the migration stream exited with ${signal ?? code}: ${lastLines(stderr)}`,
        );
        listening(failure);
        if (code === 0) resolve();
        else reject(failure);
      });
    });
    // The file is complete when socat has written the end of the stream and QEMU says that was all.
    const [, final] = await Promise.all([exited, finished]);
    if (final.data.status !== 'completed') {
      throw new IncompleteStreamError(
        `the migration ${String(final.data.status)}: its stream is not an image`,
      );
    }
  };
  const stored = images.writeImageFile(target.storageLocation, target.snapshotId, target.vm, fill);
  stored.catch(() => undefined); // the capture awaits it; a failure must not go unhandled meanwhile
  const outcome = await Promise.race([
    ready,
    // The store can refuse before socat even starts (a committed bundle).
    stored.then(
      () => new Error('the store finished before the stream started'),
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    ),
  ]);
  const close = async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited?.catch(() => undefined);
  };
  if (outcome === 'listening') return { uri: `unix:${socketPath}`, stored, close };
  await close();
  if (outcome === 'no socat') return outcome;
  throw outcome;
}

/** The agent receives the stream over the socket and streams it into the store, hashing on the way. */
async function openStreamSink(
  images: ImageStore,
  target: CaptureTarget,
  socketPath: string,
): Promise<CaptureSink> {
  const server: Server = createServer();
  const connection = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  const stored = connection.then((socket) =>
    images
      .writeImage(target.storageLocation, target.snapshotId, target.vm, socket)
      .catch((error: unknown) => {
        // QEMU notices the closed socket and fails the migration; the VM runs on.
        socket.destroy();
        throw error;
      }),
  );
  stored.catch(() => undefined); // the capture awaits it; a failure must not go unhandled meanwhile
  return {
    uri: `unix:${socketPath}`,
    stored,
    close: async () => {
      server.close();
    },
  };
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ') || '(nothing on stderr)';
}
