import type { OfMessage } from './types.js';

// Placeholder so that code built on the codec typechecks while the codec is written; replaced next.
export function encodeMessage(_msg: OfMessage): Buffer {
  throw new Error('encodeMessage: not implemented yet');
}

export function decodeMessage(_buf: Buffer): OfMessage {
  throw new Error('decodeMessage: not implemented yet');
}
