// The transaction controller's handle on the OFC sidecar: OfcControl over
// HTTP/JSON. Errors come back as OfcError with the server's code and message.
import { DEFAULT_CONTROL_ADDRESS } from './server.js';
import { OfcError } from './errors.js';
import type {
  AdvanceResult,
  ArmRequest,
  ArmResult,
  BridgeInfo,
  FinishResult,
  NetworkCounters,
  OfcControl,
  RecordedPacket,
  SavedFlow,
  SnapshotNetworkStatus,
} from './types.js';

export interface OfcControlClientOptions {
  /** host:port of the OFC's control API; default 127.0.0.1:6654. */
  address?: string;
  /** Per call; an arm or advance waits for barriers on every bridge. */
  timeoutMs?: number;
}

export class OfcControlClient implements OfcControl {
  private readonly base: string;
  private readonly timeoutMs: number;

  constructor(options: OfcControlClientOptions = {}) {
    this.base = `http://${options.address ?? DEFAULT_CONTROL_ADDRESS}`;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  bridges(): Promise<BridgeInfo[]> {
    return this.call('GET', '/v1/bridges');
  }

  arm(req: ArmRequest): Promise<ArmResult> {
    return this.call('POST', '/v1/snapshots', req);
  }

  advance(snapshotId: string, vm: string): Promise<AdvanceResult> {
    return this.call('POST', `/v1/snapshots/${encodeURIComponent(snapshotId)}/advance`, { vm });
  }

  status(snapshotId: string): Promise<SnapshotNetworkStatus> {
    return this.call('GET', `/v1/snapshots/${encodeURIComponent(snapshotId)}`);
  }

  finish(snapshotId: string): Promise<FinishResult> {
    return this.call('POST', `/v1/snapshots/${encodeURIComponent(snapshotId)}/finish`, {});
  }

  abort(snapshotId: string, reason: string): Promise<NetworkCounters> {
    return this.call('POST', `/v1/snapshots/${encodeURIComponent(snapshotId)}/abort`, { reason });
  }

  async restoreNetwork(flows: SavedFlow[], channelState: RecordedPacket[]): Promise<void> {
    await this.call('POST', '/v1/restore', { flows, channelState });
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.base}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new OfcError(
        'Unavailable',
        `OFC control API at ${this.base} unreachable: ${(error as Error).message}`,
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      throw OfcError.fromStatus(
        response.status,
        `OFC answered ${response.status} with non-JSON: ${text.slice(0, 200)}`,
      );
    }
    if (!response.ok) {
      const error = (parsed as { error?: { message?: string } } | undefined)?.error;
      throw OfcError.fromStatus(response.status, error?.message ?? `OFC answered ${response.status}`);
    }
    return parsed as T;
  }
}
