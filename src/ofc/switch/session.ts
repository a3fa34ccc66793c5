// One OpenFlow 1.3 connection to one switch: handshake, keep-alive, xid
// tracking, requests with timeouts and barrier-confirmed batches. Whatever the
// peer sends, the worst outcome is that this one connection closes with a
// logged reason: decode errors and protocol violations never leave this class
// as exceptions.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

import type { Logger } from 'pino';

import {
  ErrorType,
  HelloFailedCode,
  MessageFramer,
  MultipartFlags,
  OFP_VERSION,
  OFPCML_NO_BUFFER,
  OfPort,
  OpenFlowDecodeError,
  decodeMessage,
  encodeMessage,
} from '../openflow/index.js';
import type {
  ErrorMessage,
  FlowModMessage,
  MultipartReplyBody,
  MultipartRequestBody,
  OfMessage,
  PacketInMessage,
} from '../openflow/index.js';
import { errorMessage } from '../../errors.js';

export interface SessionOptions {
  logger: Logger;
  /** Idle time after which we probe the switch with ECHO_REQUEST. */
  echoIntervalMs?: number;
  /** No answer to a probe (or nothing at all) for this long closes the connection. */
  echoTimeoutMs?: number;
  /** Default deadline of a request and of the handshake. */
  requestTimeoutMs?: number;
}

/** An OFPT_ERROR the switch sent about one of our messages. */
export class SwitchRefusedError extends Error {
  override readonly name = 'SwitchRefusedError';
  constructor(
    readonly errorType: number,
    readonly code: number,
    what: string,
  ) {
    super(`switch refused ${what}: ${errorName(errorType)} code ${code}`);
  }
}

/** What the handshake learnt about the switch. */
export interface SwitchIdentity {
  datapathId: string;
  /** Name of the LOCAL port, which Open vSwitch names after the bridge. */
  bridgeName: string;
  nTables: number;
}

interface PendingRequest {
  what: string;
  parts: MultipartReplyBody[];
  resolve(reply: OfMessage | MultipartReplyBody[]): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

interface PendingBatch {
  xids: Set<number>;
  errors: SwitchRefusedError[];
}

export interface SwitchSessionEvents {
  ready: [SwitchIdentity];
  packetIn: [PacketInMessage];
  closed: [string];
}

export class SwitchSession extends EventEmitter<SwitchSessionEvents> {
  private readonly framer = new MessageFramer();
  private readonly pending = new Map<number, PendingRequest>();
  private readonly batches = new Map<number, PendingBatch>();
  private readonly batchOfXid = new Map<number, PendingBatch>();
  private nextXid = 1;
  private closedReason?: string;
  private helloReceived = false;
  private readonly helloArrived: Promise<void>;
  private helloResolve!: () => void;
  private lastHeardAt = Date.now();
  private echoOutstanding = false;
  private readonly keepAlive: NodeJS.Timeout;
  private logger: Logger;
  private readonly echoIntervalMs: number;
  private readonly echoTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  identity?: SwitchIdentity;

  constructor(
    private readonly socket: Socket,
    options: SessionOptions,
  ) {
    super();
    this.helloArrived = new Promise((resolve) => (this.helloResolve = resolve));
    this.logger = options.logger.child({ peer: socket.remoteAddress ?? 'unix' });
    this.echoIntervalMs = options.echoIntervalMs ?? 5_000;
    this.echoTimeoutMs = options.echoTimeoutMs ?? 15_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.close(`socket error: ${error.message}`));
    socket.on('close', () => this.close('peer closed the connection'));
    this.keepAlive = setInterval(() => this.checkAlive(), Math.max(100, Math.floor(this.echoIntervalMs / 2)));
    this.keepAlive.unref();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** HELLO, FEATURES, SET_CONFIG, port description; resolves once the switch is known. */
  async handshake(): Promise<SwitchIdentity> {
    this.send({ type: 'hello', xid: this.allocateXid(), versions: [OFP_VERSION] });
    await this.withTimeout(this.helloArrived, 'hello');
    const features = await this.request({ type: 'features-request', xid: 0 }, 'features-request');
    if (features.type !== 'features-reply') throw new Error(`expected features-reply, got ${features.type}`);
    // Whole frames in packet-ins, never a buffer id: held frames live in the
    // OFC, not in the switch's small packet buffer.
    this.send({ type: 'set-config', xid: this.allocateXid(), flags: 0, missSendLen: OFPCML_NO_BUFFER });
    const ports = await this.multipart({ kind: 'port-desc' }, 'port-desc');
    const local = ports
      .flatMap((part) => (part.kind === 'port-desc' ? part.ports : []))
      .find((p) => p.portNo === OfPort.LOCAL);
    const datapathId = features.datapathId.toString(16).padStart(16, '0');
    this.identity = { datapathId, bridgeName: local?.name ?? `dp-${datapathId}`, nTables: features.nTables };
    this.logger = this.logger.child({ bridge: this.identity.bridgeName, dpid: datapathId });
    this.logger.info('switch connected');
    this.emit('ready', this.identity);
    return this.identity;
  }

  /** Sends a message that has exactly one reply (matched by xid). */
  request(message: OfMessage, what: string, timeoutMs = this.requestTimeoutMs): Promise<OfMessage> {
    return this.track(message, what, timeoutMs) as Promise<OfMessage>;
  }

  /** Sends a multipart request and collects every part of its reply. */
  async multipart(body: MultipartRequestBody, what: string): Promise<MultipartReplyBody[]> {
    const message: OfMessage = { type: 'multipart-request', xid: 0, flags: 0, body };
    return (await this.track(message, what, this.requestTimeoutMs)) as MultipartReplyBody[];
  }

  /**
   * Sends the flow-mods and a barrier. Resolves when the barrier reply comes
   * and the switch refused none of them; rejects with the first refusal.
   */
  async applyBatch(flowMods: FlowModMessage[], timeoutMs = this.requestTimeoutMs): Promise<void> {
    if (this.closed) throw new Error(`connection closed: ${this.closedReason}`);
    const batch: PendingBatch = { xids: new Set(), errors: [] };
    const barrierXid = this.allocateXid();
    let barrier: Promise<unknown>;
    // One write for the flow-mods and the barrier: the switch reads the whole
    // batch at once instead of waking up per message (an epoch advance is on
    // the snapshot's critical path).
    this.socket.cork();
    try {
      for (const flowMod of flowMods) {
        const xid = this.allocateXid();
        batch.xids.add(xid);
        this.batchOfXid.set(xid, batch);
        this.send({ ...flowMod, xid });
      }
      this.batches.set(barrierXid, batch);
      barrier = this.track({ type: 'barrier-request', xid: barrierXid }, 'barrier', timeoutMs);
    } finally {
      this.socket.uncork();
    }
    try {
      await barrier;
    } finally {
      this.batches.delete(barrierXid);
      for (const xid of batch.xids) this.batchOfXid.delete(xid);
    }
    if (batch.errors.length > 0) throw batch.errors[0];
  }

  /** Sends a message that has no reply (PACKET_OUT, SET_CONFIG); false when the connection is closed. */
  send(message: OfMessage): boolean {
    if (this.closed) return false;
    const xid = message.xid === 0 ? this.allocateXid() : message.xid;
    this.socket.write(encodeMessage({ ...message, xid }));
    return true;
  }

  /**
   * Whether the switch still answers: a barrier round trip within `timeoutMs`.
   * How a second connection claiming this datapath is judged (registry.ts):
   * a live session is kept, a dead one replaced.
   */
  async answers(timeoutMs: number): Promise<boolean> {
    try {
      await this.request({ type: 'barrier-request', xid: 0 }, 'liveness probe', timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Closes the connection (once), failing everything still waiting on it. */
  close(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    clearInterval(this.keepAlive);
    this.logger.info({ reason }, 'switch connection closed');
    this.socket.destroy();
    for (const [xid, request] of this.pending) {
      clearTimeout(request.timer);
      this.pending.delete(xid);
      request.reject(new Error(`connection to switch closed while waiting for ${request.what}: ${reason}`));
    }
    this.emit('closed', reason);
  }

  // -------------------------------------------------------------------------

  private track(message: OfMessage, what: string, timeoutMs: number): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error(`connection closed: ${this.closedReason}`));
    const xid = message.xid === 0 ? this.allocateXid() : message.xid;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(xid);
        reject(new Error(`switch did not answer ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(xid, {
        what,
        parts: [],
        resolve: resolve as PendingRequest['resolve'],
        reject,
        timer,
      });
      this.socket.write(encodeMessage({ ...message, xid }));
    });
  }

  private withTimeout(promise: Promise<void>, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`switch sent no ${what} within ${this.requestTimeoutMs} ms`)),
        this.requestTimeoutMs,
      );
      const settle = () => clearTimeout(timer);
      promise.then(() => (settle(), resolve()));
      this.once('closed', (reason) => (settle(), reject(new Error(`connection closed: ${reason}`))));
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastHeardAt = Date.now();
    this.echoOutstanding = false;
    let frames: Buffer[];
    try {
      frames = this.framer.push(chunk);
    } catch (error) {
      this.close(`undecodable stream: ${errorMessage(error)}`);
      return;
    }
    for (const bytes of frames) {
      if (this.closed) return;
      let message: OfMessage;
      try {
        message = decodeMessage(bytes);
      } catch (error) {
        const reason =
          error instanceof OpenFlowDecodeError ? error.message : `decoder failed: ${errorMessage(error)}`;
        this.close(`malformed message from switch: ${reason}`);
        return;
      }
      try {
        this.dispatch(message);
      } catch (error) {
        this.close(`protocol violation: ${errorMessage(error)}`);
        return;
      }
    }
  }

  private dispatch(message: OfMessage): void {
    if (!this.helloReceived) {
      if (message.type !== 'hello') throw new Error(`first message was ${message.type}, not hello`);
      this.onHello(message.versions, message.version ?? 0);
      return;
    }
    switch (message.type) {
      case 'echo-request':
        this.send({ type: 'echo-reply', xid: message.xid, data: message.data });
        return;
      case 'echo-reply':
        return;
      case 'packet-in':
        this.emit('packetIn', message);
        return;
      case 'error':
        this.onError(message);
        return;
      case 'multipart-reply': {
        const request = this.pending.get(message.xid);
        if (!request) return this.unexpected(message);
        request.parts.push(message.body);
        if ((message.flags & MultipartFlags.MORE) === 0) this.settle(message.xid, request.parts);
        return;
      }
      case 'features-reply':
      case 'barrier-reply':
      case 'get-config-reply':
      case 'role-reply':
        if (!this.pending.has(message.xid)) return this.unexpected(message);
        this.settle(message.xid, message);
        return;
      case 'hello':
        throw new Error('second hello');
      default:
        // Port status, flow removed and the like carry nothing we act on.
        this.logger.debug({ type: message.type }, 'ignored message from switch');
    }
  }

  private onHello(versions: number[], headerVersion: number): void {
    this.helloReceived = true;
    const supported = versions.length > 0 ? versions.includes(OFP_VERSION) : headerVersion >= OFP_VERSION;
    if (!supported) {
      const text = `violin speaks OpenFlow 1.3 only; switch offered ${versions.length > 0 ? versions.join(',') : headerVersion}`;
      this.send({
        type: 'error',
        xid: 0,
        errorType: ErrorType.HELLO_FAILED,
        code: HelloFailedCode.INCOMPATIBLE,
        data: Buffer.from(text),
      });
      throw new Error(text);
    }
    this.helloResolve();
  }

  private onError(message: ErrorMessage): void {
    const batch = this.batchOfXid.get(message.xid);
    if (batch) {
      batch.errors.push(
        new SwitchRefusedError(message.errorType, message.code, `flow-mod xid ${message.xid}`),
      );
      return;
    }
    const request = this.pending.get(message.xid);
    if (request) {
      clearTimeout(request.timer);
      this.pending.delete(message.xid);
      request.reject(new SwitchRefusedError(message.errorType, message.code, request.what));
      return;
    }
    this.logger.warn(
      { xid: message.xid, errorType: message.errorType, code: message.code },
      'unsolicited error',
    );
  }

  private settle(xid: number, reply: OfMessage | MultipartReplyBody[]): void {
    const request = this.pending.get(xid);
    if (!request) return;
    clearTimeout(request.timer);
    this.pending.delete(xid);
    request.resolve(reply);
  }

  private unexpected(message: OfMessage): void {
    this.logger.debug({ type: message.type, xid: message.xid }, 'reply to no pending request (timed out?)');
  }

  private checkAlive(): void {
    const silentFor = Date.now() - this.lastHeardAt;
    if (silentFor >= this.echoTimeoutMs) {
      this.close(`no message from switch for ${silentFor} ms (echo timeout)`);
      return;
    }
    if (silentFor >= this.echoIntervalMs && !this.echoOutstanding && this.helloReceived) {
      this.echoOutstanding = true;
      this.send({ type: 'echo-request', xid: this.allocateXid(), data: Buffer.alloc(0) });
    }
  }

  private allocateXid(): number {
    const xid = this.nextXid;
    this.nextXid = this.nextXid >= 0xfffffffe ? 1 : this.nextXid + 1;
    return xid;
  }
}

function errorName(errorType: number): string {
  const entry = Object.entries(ErrorType).find(([, value]) => value === errorType);
  return entry ? `OFPET_${entry[0]}` : `error type ${errorType}`;
}
