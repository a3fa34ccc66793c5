// The OpenFlow 1.3 codec: message types, encode/decode, stream framing, and
// ovs-ofctl formatting and parsing of matches and actions.
export * from './types.js';
export * from './numbers.js';
export { encodeMessage } from './encode.js';
export { decodeMessage } from './decode.js';
export { MessageFramer } from './framer.js';
export { formatMatch, formatActions, formatFlow } from './format.js';
export type { FlowLike } from './format.js';
export { parseMatch, parseActions } from './parse.js';
export { describeError } from './error-names.js';
