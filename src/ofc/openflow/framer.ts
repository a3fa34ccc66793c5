import { OpenFlowDecodeError } from './types.js';
import { OFP_HEADER_LEN } from './numbers.js';

/**
 * Splits an OpenFlow byte stream (TCP, TLS or a unix socket) into whole
 * messages using the 16-bit length in each header. Version is not checked here:
 * decodeMessage judges each message, so a bad one can be reported with its xid.
 */
export class MessageFramer {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes consumed from the stream so far, so errors can say where in it they happened. */
  private streamOffset = 0;

  /** Adds a chunk; returns every message it completes, in order. Throws OpenFlowDecodeError on a length < 8. */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: Buffer[] = [];
    let start = 0;
    while (this.pending.length - start >= OFP_HEADER_LEN) {
      const length = this.pending.readUInt16BE(start + 2);
      if (length < OFP_HEADER_LEN) {
        throw new OpenFlowDecodeError(
          `header length ${length} is shorter than the ${OFP_HEADER_LEN}-byte header`,
          this.streamOffset + start + 2,
        );
      }
      if (this.pending.length - start < length) break;
      // Copy, so a message handed out never pins or aliases the stream buffer.
      messages.push(Buffer.from(this.pending.subarray(start, start + length)));
      start += length;
    }
    this.streamOffset += start;
    this.pending = this.pending.subarray(start);
    return messages;
  }

  /** Bytes received that do not yet form a whole message. */
  get bufferedBytes(): number {
    return this.pending.length;
  }
}
