// Writes a stream into a file at the speed of the stream, not of one syscall
// round trip per chunk. A VM image arrives as ~1400 socket reads of 64 KiB
// per 90 MiB; awaiting a write for each one capped the agent's capture at
// ~400 MiB/s on an idle machine (~60 MiB/s on a loaded one), and a slow sink
// also lengthens the guest's stop-and-copy, which waits for the stream to
// drain. So chunks that arrive while a write is in flight go into the next
// writev together, and what is written is flushed to disk in the background
// while the stream goes on, so that the closing fsync waits only for the tail.
import type { FileHandle } from 'node:fs/promises';

export interface StreamingFileWriterOptions {
  /** Bytes queued (received, not yet written) before write() makes its caller wait. */
  maxQueuedBytes?: number;
  /** Start a background fdatasync once this many bytes were written since the last one started. */
  flushEveryBytes?: number;
}

export class StreamingFileWriter {
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private written = 0;
  private syncedUpTo = 0;
  private writing: Promise<void> | undefined;
  private flushing: Promise<void> | undefined;
  private failure: unknown;
  private readonly maxQueuedBytes: number;
  private readonly flushEveryBytes: number;

  constructor(
    private readonly handle: FileHandle,
    options: StreamingFileWriterOptions = {},
  ) {
    this.maxQueuedBytes = options.maxQueuedBytes ?? 32 * 2 ** 20;
    this.flushEveryBytes = options.flushEveryBytes ?? 16 * 2 ** 20;
  }

  /** Queues `chunk` (which must not be modified afterwards); waits only while the queue is full. */
  async write(chunk: Uint8Array): Promise<void> {
    this.throwIfFailed();
    this.queue.push(chunk);
    this.queuedBytes += chunk.byteLength;
    this.startWriting();
    while (this.queuedBytes > this.maxQueuedBytes && this.writing) {
      await this.writing;
      this.throwIfFailed();
    }
  }

  /** Writes what is queued and makes the file durable (fsync); resolves to the bytes written. */
  async finish(): Promise<number> {
    await this.settle();
    this.throwIfFailed();
    await this.handle.sync();
    return this.written;
  }

  /** Waits for every write and flush in flight to end, so the handle can be closed; starts no new one. */
  async abandon(): Promise<void> {
    this.failure ??= new Error('abandoned');
    await this.settle();
  }

  private async settle(): Promise<void> {
    while (this.writing || this.flushing) await Promise.all([this.writing, this.flushing]);
  }

  private startWriting(): void {
    if (this.writing || this.queue.length === 0 || this.failure !== undefined) return;
    const batch = this.queue;
    const bytes = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    this.writing = this.handle.writev(batch).then(
      ({ bytesWritten }) => {
        this.writing = undefined;
        // libuv's writev loops over partial writes: fewer bytes means the disk refused the rest.
        if (bytesWritten !== bytes) {
          this.failure = new Error(`wrote ${bytesWritten} of ${bytes} bytes`);
          return;
        }
        this.written += bytes;
        this.startFlushing();
        this.startWriting();
      },
      (error: unknown) => {
        this.writing = undefined;
        this.failure = error;
      },
    );
  }

  private startFlushing(): void {
    if (this.flushing || this.failure !== undefined) return;
    if (this.written - this.syncedUpTo < this.flushEveryBytes) return;
    this.syncedUpTo = this.written;
    this.flushing = this.handle.datasync().then(
      () => {
        this.flushing = undefined;
        this.startFlushing();
      },
      (error: unknown) => {
        this.flushing = undefined;
        this.failure = error;
      },
    );
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
