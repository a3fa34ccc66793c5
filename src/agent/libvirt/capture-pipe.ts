// The pipe a held capture's migration stream runs through (held-capture.ts),
// and the agent's gate on reading it: what the agent does not read, QEMU
// cannot write, and that is what holds QEMU's migration thread.
import { execFile } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { VirshMonitor } from './virsh-monitor.js';

/** The agent's read side of QEMU's stream: it reads only as far as `allowance`. */
export class StreamGate {
  bytes = 0;
  allowance = 0;
  private waiter: (() => void) | undefined;

  /** Resolves when the reader may read on. */
  async open(): Promise<void> {
    while (this.bytes >= this.allowance) await new Promise<void>((resolve) => (this.waiter = resolve));
  }

  allow(allowance: number): void {
    this.allowance = allowance;
    this.waiter?.();
  }
}

/**
 * A FIFO in `workDir`: QEMU gets its write end through libvirt (`getfd` as
 * `fdName`), the agent reads the other end. Removed from the file system at
 * once: only the two open ends remain.
 */
export async function openCapturePipe(
  workDir: string,
  monitor: VirshMonitor,
  fdName: string,
): Promise<Socket> {
  const dir = await mkdtemp(join(workDir, 'capture-'));
  try {
    const fifo = join(dir, 'stream');
    await promisify(execFile)('mkfifo', ['-m', '600', fifo]);
    // Plain descriptors, not FileHandles: the socket owns the read end (a FileHandle would close it
    // when collected). Read end first, non-blocking, so neither open waits for the other side.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, constants.O_WRONLY);
    try {
      await monitor.executeWithFd('getfd', { fdname: fdName }, writer);
    } catch (error) {
      closeSync(reader);
      throw error;
    } finally {
      // QEMU has its own copy now; ours would keep the stream from ever ending.
      closeSync(writer);
    }
    return new Socket({ fd: reader, readable: true, writable: false });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
