// The controller end of one OpenFlow connection, just enough to drive a real
// switch with the codec: send messages, wait for the reply that matches.
import type { Socket } from 'node:net';

import {
  MessageFramer,
  decodeMessage,
  describeError,
  encodeMessage,
} from '../../../src/ofc/openflow/index.js';
import type { OfMessage } from '../../../src/ofc/openflow/index.js';

interface Waiter {
  accept: (msg: OfMessage) => boolean;
  resolve: (msg: OfMessage) => void;
  reject: (error: Error) => void;
}

export class ControllerSocket {
  /** Every message received, in order (replies and asynchronous ones). */
  readonly received: OfMessage[] = [];
  private readonly framer = new MessageFramer();
  private readonly waiters: Waiter[] = [];
  private nextXid = 1;
  private failure: Error | undefined;

  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.framer.push(chunk)) this.deliver(decodeMessage(frame));
      } catch (error) {
        this.fail(error as Error);
      }
    });
    socket.on('close', () => this.fail(new Error('switch closed the connection')));
    socket.on('error', (error) => this.fail(error));
  }

  xid(): number {
    return this.nextXid++;
  }

  send(msg: OfMessage): void {
    this.socket.write(encodeMessage(msg));
  }

  /** Resolves with the first message (already received or still to come) that `accept` takes. */
  waitFor(accept: (msg: OfMessage) => boolean, what: string): Promise<OfMessage> {
    const seen = this.received.find(accept);
    if (seen) return Promise.resolve(seen);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index !== -1) this.waiters.splice(index, 1);
        reject(new Error(`no ${what} from the switch within 20 s`));
      }, 20_000);
      const waiter: Waiter = {
        accept,
        resolve: (msg) => {
          clearTimeout(timer);
          resolve(msg);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Sends a request and waits for the reply with its xid (an error reply rejects). */
  async request(msg: OfMessage): Promise<OfMessage> {
    this.send(msg);
    const reply = await this.waitFor(
      (m) => m.xid === msg.xid && m !== msg,
      `reply to ${msg.type} xid ${msg.xid}`,
    );
    if (reply.type === 'error') {
      throw new Error(`switch refused ${msg.type}: error type ${reply.errorType} code ${reply.code}`);
    }
    return reply;
  }

  /** Errors the switch sent so far for the given xids (all when absent), as `xid type/code` (readable in a failed expect). */
  errors(xids?: number[]): string[] {
    return this.received.flatMap((m) =>
      m.type === 'error' && (!xids || xids.includes(m.xid))
        ? [`xid ${m.xid}: ${describeError(m.errorType, m.code)}`]
        : [],
    );
  }

  close(): void {
    this.socket.destroy();
  }

  private deliver(msg: OfMessage): void {
    // Answer keep-alives so the switch never drops us mid-test.
    if (msg.type === 'echo-request') this.send({ type: 'echo-reply', xid: msg.xid, data: msg.data });
    this.received.push(msg);
    for (const waiter of [...this.waiters]) {
      if (waiter.accept(msg)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(msg);
      }
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }
}
