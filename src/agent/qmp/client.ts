// A QMP client (QEMU Machine Protocol: JSON objects, one per line, over a unix
// socket). Commands carry ids and replies are matched by id; asynchronous
// events (STOP, RESUME, MIGRATION, ...) go to listeners with QEMU's own
// timestamps, which is how a capture measures downtime as QEMU saw it.
//
// The connection is the unit of failure: a line longer than the limit or that
// is not a JSON object closes it, fails every pending command with the reason,
// and leaves the rest of the process alone.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClosedSignal } from './closed-signal.js';
import type { QmpEvent, QmpMonitor } from './monitor.js';
import { awaitEvent, QmpCommandError } from './monitor.js';

export type { QmpEvent, QmpMonitor } from './monitor.js';
export { QmpCommandError } from './monitor.js';

/** Longest line QEMU sends in practice is a few KiB (query-migrate, query-status); 1 MiB is generous. */
const MAX_LINE_BYTES = 1024 * 1024;

/** The connection failed, closed, or the peer broke the protocol. */
export class QmpConnectionError extends Error {
  override readonly name = 'QmpConnectionError';
}

interface Pending {
  command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export class QmpClient implements QmpMonitor {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(event: QmpEvent) => void>();
  private readonly closed = new ClosedSignal();
  private greetingWaiter: Pending | undefined;
  greeting!: QmpGreeting;

  private constructor(
    private readonly socket: Socket,
    readonly path: string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (error) => this.fail(new QmpConnectionError(`QMP ${path}: ${error.message}`)));
    socket.on('close', () => this.fail(new QmpConnectionError(`QMP ${path}: connection closed by QEMU`)));
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(path: string, timeoutMs = 10_000): Promise<QmpClient> {
    const socket = connect(path);
    const client = new QmpClient(socket, path);
    const timer = setTimeout(
      () => client.fail(new QmpConnectionError(`QMP ${path}: no greeting within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      client.greeting = (await new Promise((resolve, reject) => {
        client.greetingWaiter = { command: 'greeting', resolve, reject };
      })) as QmpGreeting;
      await client.execute('qmp_capabilities');
    } catch (error) {
      client.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed.closedWith) return Promise.reject(this.closed.closedWith);
    const id = `violin-${this.nextId++}`;
    const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** The VM's run state as `query-status` reports it: running, paused, postmigrate, inmigrate, ... */
  async runState(): Promise<string> {
    return (await this.execute<{ status: string }>('query-status')).status;
  }

  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first event named `name` (and matching `predicate`) from now on. */
  waitForEvent(
    name: string,
    timeoutMs: number,
    predicate: (e: QmpEvent) => boolean = () => true,
  ): Promise<QmpEvent> {
    return awaitEvent(this, name, timeoutMs, predicate, `QMP ${this.path}`).catch((error: unknown) => {
      throw error instanceof QmpConnectionError ? error : new QmpConnectionError((error as Error).message);
    });
  }

  onClose(listener: (error: Error) => void): () => void {
    return this.closed.onClose(listener);
  }

  close(): void {
    this.fail(new QmpConnectionError(`QMP ${this.path}: closed`));
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line.length > 0) this.handleLine(line);
      if (this.closed.closedWith) return;
    }
    if (Buffer.byteLength(this.buffer) > MAX_LINE_BYTES) {
      this.fail(
        new QmpConnectionError(
          `QMP ${this.path}: a line exceeded ${MAX_LINE_BYTES} bytes; connection closed`,
        ),
      );
    }
  }

  private handleLine(line: string): void {
    let message: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      message = parsed as Record<string, unknown>;
    } catch {
      this.fail(
        new QmpConnectionError(
          `QMP ${this.path}: malformed message ${JSON.stringify(line.slice(0, 200))}; connection closed`,
        ),
      );
      return;
    }
    if ('QMP' in message) {
      const waiter = this.greetingWaiter;
      this.greetingWaiter = undefined;
      waiter?.resolve(message.QMP);
      return;
    }
    if (typeof message.event === 'string') {
      const ts = message.timestamp as { seconds?: number; microseconds?: number } | undefined;
      const event: QmpEvent = {
        event: message.event,
        data: (message.data as Record<string, unknown> | undefined) ?? {},
        timestampMs:
          ts?.seconds !== undefined ? ts.seconds * 1000 + (ts.microseconds ?? 0) / 1000 : Date.now(),
      };
      for (const listener of [...this.listeners]) listener(event);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (!pending || !id) {
      this.fail(
        new QmpConnectionError(`QMP ${this.path}: reply to no command I sent: ${line.slice(0, 200)}`),
      );
      return;
    }
    this.pending.delete(id);
    if ('return' in message) {
      pending.resolve(message.return);
    } else if (typeof message.error === 'object' && message.error !== null) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(
        new QmpCommandError(pending.command, error.class ?? 'Unknown', error.desc ?? '(no description)'),
      );
    } else {
      this.fail(
        new QmpConnectionError(
          `QMP ${this.path}: reply with neither return nor error: ${line.slice(0, 200)}`,
        ),
      );
    }
  }

  private fail(error: Error): void {
    if (this.closed.closedWith) return;
    this.socket.destroy();
    this.greetingWaiter?.reject(error);
    this.greetingWaiter = undefined;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    this.closed.close(error);
  }
}

/**
 * `cont` right after a migration completed. QEMU announces `completed` from
 * the migration thread and leaves the finish-migrate run state a moment later
 * in its main loop; a `cont` in between is refused as "not finalized yet".
 * Retry at once until it is accepted: this gap is part of the downtime anyway.
 */
export async function contAfterMigration(qmp: QmpMonitor): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await qmp.execute('cont');
      return;
    } catch (error) {
      const finalizing = error instanceof QmpCommandError && /not finalized/i.test(error.description);
      if (!finalizing || Date.now() > deadline) throw error;
      await sleep(1);
    }
  }
}
