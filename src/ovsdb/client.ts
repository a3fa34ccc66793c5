// An RFC 7047 OVSDB management protocol client: JSON-RPC 1.0 over a unix,
// TCP or TLS stream, requests matched to responses by id, the server's echo
// keep-alives answered, monitor updates delivered to their subscriber.
//
// A connection that breaks the protocol (bad framing, bad JSON, an answer to a
// question never asked, a malformed value) is closed with a reason that names
// the fault; every pending call is rejected with it. Nothing here throws out
// of an event handler, so one bad peer never takes the process down.
import { connect as connectSocket } from 'node:net';
import type { Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { ConnectionOptions } from 'node:tls';

import { JsonMessageScanner } from './framing.js';
import { decodeOperationResult, decodeTableUpdates, encodeOperation } from './protocol.js';
import type { MonitorRequest, Operation, OperationResult, TableUpdates } from './protocol.js';
import { errorMessage } from '../errors.js';

/** The connection is gone (closed by either side, or closed for breaking the protocol). */
export class OvsdbConnectionError extends Error {
  override name = 'OvsdbConnectionError';
}

/** The server answered a JSON-RPC request with an error. */
export class OvsdbRpcError extends Error {
  override name = 'OvsdbRpcError';
  constructor(
    readonly method: string,
    readonly error: unknown,
  ) {
    super(`OVSDB ${method} failed: ${JSON.stringify(error)}`);
  }
}

/** One operation of a transaction failed, so the server aborted the whole transaction. */
export class OvsdbTransactionError extends Error {
  override name = 'OvsdbTransactionError';
  constructor(
    /** Index of the failing operation; equals the number of operations when the commit itself failed. */
    readonly operationIndex: number,
    readonly error: string,
    readonly details: string | undefined,
    operation: Operation | undefined,
  ) {
    const what = operation
      ? `operation ${operationIndex} (${operation.op}${'table' in operation ? ` ${operation.table}` : ''})`
      : 'commit';
    super(`OVSDB transaction failed at ${what}: ${error}${details ? `: ${details}` : ''}`);
  }
}

export interface OvsdbClientOptions {
  /** Bound on one incoming message; a larger one closes the connection. */
  maxMessageBytes?: number;
  /** Client key and certificate, and the CA that signed the server's certificate (PEM), for ssl: remotes. */
  tls?: Pick<ConnectionOptions, 'key' | 'cert' | 'ca' | 'servername'>;
}

/** A live monitor, and how to stop it. */
export interface Monitor {
  cancel(): Promise<void>;
}

interface PendingCall {
  method: string;
  resolve(result: unknown): void;
  reject(error: Error): void;
  /** Runs when the result arrives, before any later message is dispatched. */
  onResult?: (result: unknown) => void;
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export type OvsdbRemote =
  { kind: 'unix'; path: string } | { kind: 'tcp' | 'ssl'; host: string; port: number };

/**
 * Parses an OVS remote as ovs-vsctl's --db takes it: `unix:<path>`,
 * `tcp:<host>:<port>` or `ssl:<host>:<port>` (IPv6 hosts in brackets).
 */
export function parseRemote(remote: string): OvsdbRemote {
  if (remote.startsWith('unix:') && remote.length > 'unix:'.length) {
    return { kind: 'unix', path: remote.slice('unix:'.length) };
  }
  const inet = /^(tcp|ssl):(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(remote);
  if (inet) {
    const port = Number(inet[4]);
    if (port > 0 && port < 65536) {
      return { kind: inet[1] as 'tcp' | 'ssl', host: (inet[2] ?? inet[3]) as string, port };
    }
  }
  throw new Error(
    `not an OVSDB remote: ${JSON.stringify(remote)} (expected unix:<path>, tcp:<host>:<port> or ssl:<host>:<port>)`,
  );
}

export class OvsdbClient {
  /** Resolves when the connection has ended: with the reason, or undefined after close(). */
  readonly closed: Promise<Error | undefined>;

  private readonly scanner: JsonMessageScanner;
  private readonly pending = new Map<number, PendingCall>();
  private readonly monitors = new Map<string, (updates: TableUpdates) => void>();
  private nextId = 1;
  private nextMonitor = 1;
  private closeReason: Error | undefined;
  private isClosed = false;
  private resolveClosed!: (reason: Error | undefined) => void;

  /** Wraps a connected stream; `connect` is the usual way in. */
  constructor(
    private readonly socket: Socket,
    options: OvsdbClientOptions = {},
  ) {
    this.scanner = new JsonMessageScanner(options.maxMessageBytes);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) =>
      this.fail(new OvsdbConnectionError(`OVSDB connection error: ${error.message}`)),
    );
    socket.on('close', () => this.fail(new OvsdbConnectionError('OVSDB connection closed by the server')));
  }

  /**
   * Connects to `unix:<path>`, `tcp:<host>:<port>` or `ssl:<host>:<port>`.
   * ssl: needs `options.tls`; ovsdb-server checks our certificate against its
   * CA, and we check its certificate against ours and its name (or IP
   * address) against the host we dialled.
   */
  static connect(remote: string, options: OvsdbClientOptions = {}): Promise<OvsdbClient> {
    const address = parseRemote(remote);
    if (address.kind === 'ssl' && !options.tls) {
      return Promise.reject(new Error(`${remote}: an ssl: remote needs TLS options (key, cert, ca)`));
    }
    return new Promise((resolve, reject) => {
      let socket: Socket;
      let ready: string;
      if (address.kind === 'unix') {
        socket = connectSocket({ path: address.path });
        ready = 'connect';
      } else if (address.kind === 'tcp') {
        socket = connectSocket({ host: address.host, port: address.port });
        ready = 'connect';
      } else {
        socket = connectTls({ host: address.host, port: address.port, ...options.tls });
        ready = 'secureConnect';
      }
      const onError = (error: Error) =>
        reject(new OvsdbConnectionError(`cannot connect to ${remote}: ${error.message}`));
      socket.once('error', onError);
      socket.once(ready, () => {
        socket.off('error', onError);
        resolve(new OvsdbClient(socket, options));
      });
    });
  }

  /** RFC 7047 4.1.1. */
  async listDbs(): Promise<string[]> {
    const result = await this.call('list_dbs', []);
    if (!Array.isArray(result) || !result.every((name) => typeof name === 'string')) {
      throw this.protocolViolation('list_dbs result is not an array of names');
    }
    return result;
  }

  /** RFC 7047 4.1.2: the schema as JSON (tables, columns, types). */
  async getSchema(database: string): Promise<JsonObject> {
    const result = await this.call('get_schema', [database]);
    if (!isObject(result)) throw this.protocolViolation('get_schema result is not an object');
    return result;
  }

  /**
   * RFC 7047 4.1.3. Resolves with one result per operation, or rejects with
   * OvsdbTransactionError naming the operation that failed (the server then
   * committed nothing).
   */
  async transact(database: string, operations: Operation[]): Promise<OperationResult[]> {
    const result = await this.call('transact', [database, ...operations.map(encodeOperation)]);
    if (!Array.isArray(result)) throw this.protocolViolation('transact result is not an array');
    result.forEach((element: unknown, index) => {
      if (isObject(element) && typeof element.error === 'string') {
        const details = typeof element.details === 'string' ? element.details : undefined;
        throw new OvsdbTransactionError(index, element.error, details, operations[index]);
      }
    });
    try {
      return operations.map((_operation, index) => decodeOperationResult(result[index], `result[${index}]`));
    } catch (error) {
      throw this.protocolViolation(`transact result: ${errorMessage(error)}`);
    }
  }

  /**
   * RFC 7047 4.1.5. `onUpdate` receives the tables' current contents first,
   * then every change in the order the server sent it; the promise resolves
   * once the initial contents have been delivered.
   */
  async monitor(
    database: string,
    requests: Record<string, MonitorRequest>,
    onUpdate: (updates: TableUpdates) => void,
  ): Promise<Monitor> {
    const monitorId = `m${this.nextMonitor++}`;
    // The first update may follow the reply in the same chunk, before this
    // function resumes; so the initial contents are handed over from the
    // dispatch loop, and the subscriber sees everything in server order.
    await this.call('monitor', [database, monitorId, requests], (result) => {
      this.deliver(onUpdate, decodeTableUpdates(result));
      this.monitors.set(monitorId, onUpdate);
    });
    return {
      cancel: async () => {
        if (!this.monitors.delete(monitorId)) return;
        await this.call('monitor_cancel', [monitorId]);
      },
    };
  }

  /** RFC 7047 4.1.11: a liveness check in our direction. */
  async echo(): Promise<void> {
    const payload = [`violin-${Date.now()}`];
    const result = await this.call('echo', payload);
    if (JSON.stringify(result) !== JSON.stringify(payload))
      throw this.protocolViolation('echo reply differs');
  }

  /** Closes the connection; pending calls are rejected. */
  close(): void {
    this.finish(undefined, new OvsdbConnectionError('OVSDB connection closed by the client'));
  }

  private call(method: string, params: unknown[], onResult?: (result: unknown) => void): Promise<unknown> {
    if (this.isClosed) {
      return Promise.reject(this.closeReason ?? new OvsdbConnectionError('OVSDB connection is closed'));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { method, resolve, reject, onResult });
      this.socket.write(JSON.stringify({ method, params, id }));
    });
  }

  private receive(chunk: Buffer): void {
    try {
      for (const message of this.scanner.push(chunk)) {
        if (this.isClosed) return;
        this.dispatch(message);
      }
    } catch (error) {
      this.fail(error instanceof OvsdbConnectionError ? error : this.protocolViolation(errorMessage(error)));
    }
  }

  private dispatch(message: unknown): void {
    if (!isObject(message)) throw this.protocolViolation('a JSON-RPC message must be an object');
    if (typeof message.method === 'string') {
      if (!Array.isArray(message.params))
        throw this.protocolViolation(`${message.method}: params must be an array`);
      if (message.id === null || message.id === undefined) this.notify(message.method, message.params);
      else this.answer(message.id, message.method, message.params);
      return;
    }
    const { id } = message;
    const call = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (!call) throw this.protocolViolation(`response to a request never sent (id ${JSON.stringify(id)})`);
    this.pending.delete(id as number);
    if (message.error !== null && message.error !== undefined) {
      call.reject(new OvsdbRpcError(call.method, message.error));
      return;
    }
    try {
      call.onResult?.(message.result);
    } catch (error) {
      // The connection closes (receive() sees the rethrown error); this call fails with the same reason.
      const reason =
        error instanceof OvsdbConnectionError
          ? error
          : this.protocolViolation(`${call.method} result: ${errorMessage(error)}`);
      call.reject(reason);
      throw reason;
    }
    call.resolve(message.result);
  }

  /** Requests from the server: ovsdb-server sends `echo` to check that we are alive. */
  private answer(id: unknown, method: string, params: unknown[]): void {
    const reply =
      method === 'echo'
        ? { id, result: params, error: null }
        : { id, result: null, error: { error: 'unknown method', details: method } };
    this.socket.write(JSON.stringify(reply));
  }

  private notify(method: string, params: unknown[]): void {
    // `locked`/`stolen` concern locks, which this client does not take.
    if (method !== 'update') return;
    const [monitorId, updates] = params;
    const onUpdate = typeof monitorId === 'string' ? this.monitors.get(monitorId) : undefined;
    // An update may race with our monitor_cancel: drop it quietly.
    if (!onUpdate) return;
    this.deliver(onUpdate, decodeTableUpdates(updates));
  }

  private deliver(onUpdate: (updates: TableUpdates) => void, updates: TableUpdates): void {
    try {
      onUpdate(updates);
    } catch (error) {
      // Not the server's fault, but the subscriber has now missed an update
      // and its view is wrong: end the connection loudly rather than carry on.
      throw new OvsdbConnectionError(`OVSDB monitor subscriber failed, closing: ${errorMessage(error)}`);
    }
  }

  private protocolViolation(what: string): OvsdbConnectionError {
    return new OvsdbConnectionError(`OVSDB protocol violation, closing the connection: ${what}`);
  }

  private fail(reason: Error): void {
    this.finish(reason, reason);
  }

  private finish(reason: Error | undefined, pendingError: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = pendingError;
    this.socket.destroy();
    for (const call of this.pending.values()) call.reject(pendingError);
    this.pending.clear();
    this.monitors.clear();
    this.resolveClosed(reason);
  }
}
