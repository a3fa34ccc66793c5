// QEMU's monitor through libvirt, for a VM whose QEMU a virt-launcher's libvirt
// owns: libvirt holds QEMU's only QMP connection, and the one way in beside
// libvirt's own API is its monitor passthrough (virDomainQemuMonitorCommand,
// `virsh qemu-monitor-command`; events through
// virConnectDomainQemuMonitorEventRegister, `virsh qemu-monitor-event`).
// KubeVirt's maintainers call such out-of-band use unsupported (kubevirt issue
// 14266); docs/lab.md says what violin relies on.
//
// Each command is one `virsh` run (spawned without a shell); events come from
// one long-running `virsh qemu-monitor-event --loop --timestamp` child for the
// life of the monitor, with QEMU's own timestamps. A file descriptor is handed
// to QEMU with `--pass-fds` (libvirt >= 8.2) along a `getfd` or `add-fd`
// command: libvirt's QEMU sandbox forbids QEMU to spawn (`exec:`) or to open
// the agent's files itself.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ClosedSignal } from '../qmp/closed-signal.js';
import type { EventSource, QmpEvent, QmpMonitor } from '../qmp/monitor.js';
import { awaitEvent, QmpCommandError } from '../qmp/monitor.js';
import type { LibvirtDomain } from './launcher-pod.js';
import { LibvirtError } from './libvirt-error.js';

export function virshBinary(): string {
  return process.env.VIOLIN_VIRSH ?? 'virsh';
}

/**
 * How long one `virsh qemu-monitor-command` may take. QMP answers in
 * milliseconds, but a QEMU whose big lock is held (a stuck device, a host
 * under memory pressure) answers nothing, and libvirt waits for it: without a
 * bound the agent would wait for good.
 */
export const MONITOR_COMMAND_TIMEOUT_MS = 30_000;

export interface VirshOptions {
  /** Become virsh's fds 3, 4, ... */
  fds?: readonly number[];
  /** Kill virsh and reject after this long; none by default. */
  timeoutMs?: number;
  /** What the call is, for the timeout's message (default `virsh <first arg>`). */
  what?: string;
}

/** Runs `virsh -c <uri> <args>`; resolves with its stdout, rejects with its stderr (or when it outlives `timeoutMs`). */
export function virsh(uri: string, args: readonly string[], options: VirshOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(virshBinary(), ['-q', '-c', uri, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', ...(options.fds ?? [])],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            // By its PID, through the ChildProcess: the one virsh this call started.
            child.kill('SIGKILL');
            reject(
              new LibvirtError(
                `${options.what ?? `virsh ${args[0]}`} got no answer within ${options.timeoutMs} ms ` +
                  `(a QEMU whose big lock is held answers no monitor command); virsh (pid ${child.pid}) killed`,
              ),
            );
          }, options.timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new LibvirtError(`virsh: ${error.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return;
      if (code === 0) resolve(stdout);
      else
        reject(
          new LibvirtError(
            `virsh ${args[0]} exited with ${signal ?? code}: ${stderr.trim() || '(no message)'}`,
          ),
        );
    });
  });
}

/** A `virsh qemu-monitor-event --timestamp` line: `2026-12-06 23:11:37.658+0000: event STOP for domain 'ns_vm': <null>`. */
const EVENT_LINE =
  /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d+)([+-]\d\d)(\d\d): event (\S+) for domain '.*': (.*)$/;

/** The event a line of `virsh qemu-monitor-event --timestamp` reports, or undefined for any other line. */
export function parseEventLine(line: string): QmpEvent | undefined {
  const match = EVENT_LINE.exec(line.trim());
  if (!match) return undefined;
  const [, date, time, offsetHours, offsetMinutes, event, json] = match;
  const timestampMs = Date.parse(`${date}T${time}${offsetHours}:${offsetMinutes}`);
  if (Number.isNaN(timestampMs)) return undefined;
  let data: Record<string, unknown> = {};
  if (json !== '<null>') {
    try {
      const parsed: unknown = JSON.parse(json!);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
        data = parsed as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  return { event: event!, data, timestampMs };
}

export class VirshMonitor implements QmpMonitor, EventSource {
  private readonly listeners = new Set<(event: QmpEvent) => void>();
  private readonly closed = new ClosedSignal();
  private events: ChildProcess | undefined;
  private readonly where: string;

  constructor(
    readonly target: LibvirtDomain,
    /** Bound of every command (tests shorten it). */
    private readonly commandTimeoutMs = MONITOR_COMMAND_TIMEOUT_MS,
  ) {
    this.where = `libvirt monitor of ${target.domain}`;
  }

  /**
   * Starts listening to the domain's QEMU events, at the first listener: a
   * monitor used only for commands starts nothing. virsh gives no sign of
   * having subscribed, so callers listen well before the events they need.
   */
  private listen(): void {
    if (this.events || this.closed.closedWith) return;
    const target = this.target;
    const events = spawn(
      virshBinary(),
      ['-q', '-c', target.uri, 'qemu-monitor-event', '--domain', target.domain, '--loop', '--timestamp'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.events = events;
    let stderr = '';
    events.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    createInterface({ input: events.stdout! }).on('line', (line) => {
      const event = parseEventLine(line);
      if (event) for (const listener of [...this.listeners]) listener(event);
    });
    events.once('error', (error) => this.fail(new LibvirtError(`${this.where}: ${error.message}`)));
    events.once('exit', (code, signal) =>
      this.fail(
        new LibvirtError(`${this.where}: event listener exited with ${signal ?? code}: ${stderr.trim()}`),
      ),
    );
  }

  async execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    return this.run<T>(command, args, []);
  }

  /** Runs `command` with `fd` passed to QEMU along with it (for `getfd` and `add-fd`). */
  async executeWithFd<T = unknown>(command: string, args: Record<string, unknown>, fd: number): Promise<T> {
    return this.run<T>(command, args, [fd]);
  }

  async runState(): Promise<string> {
    return (await this.execute<{ status: string }>('query-status')).status;
  }

  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.listen();
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onClose(listener: (error: Error) => void): () => void {
    return this.closed.onClose(listener);
  }

  waitForEvent(
    name: string,
    timeoutMs: number,
    predicate: (e: QmpEvent) => boolean = () => true,
  ): Promise<QmpEvent> {
    return awaitEvent(this, name, timeoutMs, predicate, this.where);
  }

  close(): void {
    this.fail(new LibvirtError(`${this.where}: closed`));
  }

  private async run<T>(
    command: string,
    args: Record<string, unknown> | undefined,
    fds: number[],
  ): Promise<T> {
    if (this.closed.closedWith) throw this.closed.closedWith;
    const message = JSON.stringify(
      args === undefined ? { execute: command } : { execute: command, arguments: args },
    );
    const passFds = fds.length > 0 ? ['--pass-fds', fds.map((_, i) => String(3 + i)).join(',')] : [];
    const stdout = await virsh(
      this.target.uri,
      ['qemu-monitor-command', this.target.domain, ...passFds, message],
      {
        fds,
        timeoutMs: this.commandTimeoutMs,
        what: `${this.where}: ${command}`,
      },
    );
    let reply: { return?: unknown; error?: { class?: string; desc?: string } };
    try {
      reply = JSON.parse(stdout) as typeof reply;
    } catch {
      throw new LibvirtError(`${this.where}: ${command} answered with no JSON: ${stdout.slice(0, 200)}`);
    }
    if (reply.error) {
      throw new QmpCommandError(
        command,
        reply.error.class ?? 'Unknown',
        reply.error.desc ?? '(no description)',
      );
    }
    return reply.return as T;
  }

  private fail(error: Error): void {
    if (this.closed.closedWith) return;
    const events = this.events;
    if (events && events.exitCode === null && events.signalCode === null) events.kill('SIGTERM');
    this.closed.close(error);
  }
}
