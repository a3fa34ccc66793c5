// Property-based tests: random valid messages round-trip; random and mutated
// bytes never make the decoder throw anything but OpenFlowDecodeError (nor
// hang); the framer returns the same messages however the stream is chunked.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  MessageFramer,
  OpenFlowDecodeError,
  decodeMessage,
  encodeMessage,
} from '../../../../src/ofc/openflow/index.js';
import { u8, u32, blob, messageArb } from '../../../support/openflow-arbitraries.js';

/** Only OpenFlowDecodeError may come out of the decoder; anything else fails the property. */
function decodeOrDecodeError(buf: Buffer): void {
  try {
    decodeMessage(buf);
  } catch (error) {
    if (!(error instanceof OpenFlowDecodeError)) throw error;
  }
}

describe('codec properties', () => {
  it('round-trips every valid message: decode(encode(m)) equals m, and re-encodes to the same bytes', () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const wire = encodeMessage(msg);
        expect(wire.readUInt16BE(2)).toBe(wire.length);
        const decoded = decodeMessage(wire);
        expect(decoded).toEqual(msg);
        expect(encodeMessage(decoded)).toEqual(wire);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws anything but OpenFlowDecodeError on random bytes', () => {
    fc.assert(
      fc.property(blob(300), (buf) => decodeOrDecodeError(buf)),
      { numRuns: 5000 },
    );
    // Random bodies behind a plausible header reach the body decoders.
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), blob(300), u32, (ofType, body, x) => {
        const header = Buffer.alloc(8);
        header.writeUInt8(4, 0);
        header.writeUInt8(ofType, 1);
        header.writeUInt16BE(8 + body.length, 2);
        header.writeUInt32BE(x, 4);
        decodeOrDecodeError(Buffer.concat([header, body]));
      }),
      { numRuns: 5000 },
    );
  });

  it('never throws anything but OpenFlowDecodeError on mutated valid messages', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: u8 }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('extend' as const), extra: blob(24) }),
    );
    fc.assert(
      fc.property(
        messageArb,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (msg, mutations, fixLength) => {
          let buf = Buffer.from(encodeMessage(msg));
          for (const m of mutations) {
            if (m.kind === 'flip' && buf.length > 0) buf[m.at % buf.length] = m.value;
            if (m.kind === 'truncate') buf = buf.subarray(0, m.at % (buf.length + 1));
            if (m.kind === 'extend') buf = Buffer.concat([buf, m.extra]);
          }
          // With the header length fixed up, the damage reaches the body decoders instead of the length check.
          if (fixLength && buf.length >= 4 && buf.length <= 0xffff) buf.writeUInt16BE(buf.length, 2);
          decodeOrDecodeError(buf);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('frames a stream the same however it is chunked', () => {
    fc.assert(
      fc.property(
        fc.array(messageArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (msgs, cuts) => {
          const wires = msgs.map(encodeMessage);
          const stream = Buffer.concat(wires);
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const framer = new MessageFramer();
          const out: Buffer[] = [];
          let last = 0;
          for (const p of [...points, stream.length]) {
            out.push(...framer.push(stream.subarray(last, p)));
            last = p;
          }
          expect(out).toEqual(wires);
          expect(framer.bufferedBytes).toBe(0);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('framer: a header length below 8 anywhere in the stream is an OpenFlowDecodeError, never a loop', () => {
    fc.assert(
      fc.property(blob(200), (buf) => {
        const framer = new MessageFramer();
        try {
          framer.push(buf);
        } catch (error) {
          expect(error).toBeInstanceOf(OpenFlowDecodeError);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
