// RFC 7047 sends JSON-RPC messages back to back on the stream with no
// delimiter (ovsdb-server writes no newline), so the reader must find where
// each JSON object ends. This scanner tracks string, escape and nesting state
// byte by byte, across chunk boundaries, and hands out whole messages.
//
// Working on bytes is safe for UTF-8: every byte of a multi-byte character is
// >= 0x80, so it can never be mistaken for a quote, backslash or bracket.
import { errorMessage } from '../errors.js';

/** A broken stream: the connection that produced it must be closed. */
export class FramingError extends Error {
  override name = 'FramingError';
}

/** Default bound on one message; ovsdb-server's own default for a JSON-RPC message is similar in size. */
export const DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024;
/** OVSDB messages nest a handful of levels; anything deeper is garbage, and the bound keeps the stack small. */
export const MAX_NESTING = 1024;

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isJsonWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

export class JsonMessageScanner {
  /** Bytes of the message being scanned, in the chunks they arrived in. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The closing bracket expected for each open one, innermost last: a mismatch is caught at once. */
  private readonly closers: number[] = [];
  private inString = false;
  private escaped = false;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /**
   * Consumes a chunk and returns every message it completes, parsed. Throws
   * FramingError on anything that is not a stream of JSON objects, or on a
   * message larger than the bound; the scanner is unusable afterwards, as the
   * stream has lost its framing.
   */
  push(chunk: Uint8Array): unknown[] {
    const messages: unknown[] = [];
    let start = 0;
    for (let index = 0; index < chunk.length; index++) {
      const byte = chunk[index] as number;
      if (this.closers.length === 0) {
        if (isJsonWhitespace(byte)) {
          start = index + 1;
          continue;
        }
        if (byte !== OPEN_BRACE) {
          throw new FramingError(`expected '{' to start a JSON-RPC message, got byte 0x${byte.toString(16)}`);
        }
        this.closers.push(CLOSE_BRACE);
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (byte === BACKSLASH) this.escaped = true;
        else if (byte === QUOTE) this.inString = false;
        continue;
      }
      if (byte === QUOTE) this.inString = true;
      else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
        if (this.closers.length >= MAX_NESTING)
          throw new FramingError(`JSON nested deeper than ${MAX_NESTING} levels`);
        this.closers.push(byte === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET);
      } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
        if (this.closers.pop() !== byte) {
          throw new FramingError(`mismatched '${String.fromCharCode(byte)}' in a JSON-RPC message`);
        }
        if (this.closers.length === 0) {
          this.append(chunk.subarray(start, index + 1));
          messages.push(this.takeMessage());
          start = index + 1;
        }
      }
    }
    if (this.closers.length > 0) this.append(chunk.subarray(start));
    return messages;
  }

  /** Bytes held for a message not yet complete (for tests and diagnostics). */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  private append(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pendingBytes += bytes.length;
    if (this.pendingBytes > this.maxMessageBytes) {
      throw new FramingError(`JSON-RPC message exceeds ${this.maxMessageBytes} bytes`);
    }
    this.pending.push(Buffer.from(bytes));
  }

  private takeMessage(): unknown {
    const bytes = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch {
      throw new FramingError('JSON-RPC message is not valid UTF-8');
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      // The brackets balanced but the text inside is not JSON (e.g. `{]`, `{a}`).
      throw new FramingError(`JSON-RPC message is not valid JSON: ${errorMessage(error)}`);
    }
  }
}
