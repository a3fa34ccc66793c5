// What the agent's QMP logic needs of a QEMU monitor, whichever way it reaches
// it: QEMU's own QMP socket (client.ts: QEMU the agent or the lab started) or
// libvirt's monitor passthrough (../libvirt/virsh-monitor.ts: QEMU that a
// virt-launcher's libvirt owns). Capture, migration and load logic is written
// against this interface once, so the two transports cannot drift apart.

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  /** QEMU's host clock when the event happened, in milliseconds since the epoch. */
  timestampMs: number;
}

/** QEMU refused a command: `errorClass` is QMP's class (GenericError, CommandNotFound, ...). */
export class QmpCommandError extends Error {
  override readonly name = 'QmpCommandError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${description}`);
  }
}

export interface QmpMonitor {
  /** Runs one QMP command; rejects with QmpCommandError when QEMU refuses it. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
  /** The VM's run state as `query-status` reports it: running, paused, postmigrate, inmigrate, ... */
  runState(): Promise<string>;
  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void;
  /** Resolves with the first event named `name` (and matching `predicate`) from now on. */
  waitForEvent(name: string, timeoutMs: number, predicate?: (e: QmpEvent) => boolean): Promise<QmpEvent>;
  close(): void;
}

/** Where events come from and how a closed monitor says so: what awaitEvent needs. */
export interface EventSource {
  onEvent(listener: (event: QmpEvent) => void): () => void;
  /** Calls `listener` once when the monitor closes (at once if it is closed); returns its remover. */
  onClose(listener: (error: Error) => void): () => void;
}

/**
 * The first event named `name` (and matching `predicate`) from now on; rejects
 * after `timeoutMs`, or at once when the monitor closes, since a closed monitor
 * never delivers it. Both transports wait for events this way.
 */
export function awaitEvent(
  source: EventSource,
  name: string,
  timeoutMs: number,
  predicate: (e: QmpEvent) => boolean,
  where: string,
): Promise<QmpEvent> {
  return new Promise((resolve, reject) => {
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      off();
      offClose();
      settle();
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`${where}: no ${name} event within ${timeoutMs} ms`))),
      timeoutMs,
    );
    const off = source.onEvent((event) => {
      if (event.event === name && predicate(event)) finish(() => resolve(event));
    });
    const offClose = source.onClose((error) => finish(() => reject(error)));
  });
}
