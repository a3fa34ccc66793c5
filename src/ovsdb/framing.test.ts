import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { FramingError, JsonMessageScanner } from './framing.js';

/** Splits bytes at the given cut points (sorted, deduplicated, within range). */
function chunksOf(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

// JSON-RPC-shaped objects whose strings are full of the characters a naive
// scanner trips on: quotes, backslashes, braces, brackets, multi-byte UTF-8.
const trickyString = fc.string({
  unit: fc.constantFrom('a', '"', '\\', '{', '}', '[', ']', ' ', '\n', 'é', '€', '😀', '\u0000', '/'),
});
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    trickyString,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    tie('object'),
  ),
  object: fc.dictionary(trickyString, tie('value'), { maxKeys: 4 }),
})).object;
const whitespace = fc.constantFrom('', ' ', '\n', '\r\n', '\t  ');

describe('JsonMessageScanner', () => {
  it('returns every message whole, however the stream is chunked', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(jsonValue, whitespace), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, cuts) => {
          const stream = Buffer.from(
            messages.map(([message, gap]) => JSON.stringify(message) + gap).join(''),
          );
          const scanner = new JsonMessageScanner();
          const received = chunksOf(stream, cuts).flatMap((chunk) => scanner.push(chunk));
          expect(received).toEqual(messages.map(([message]) => JSON.parse(JSON.stringify(message))));
          expect(scanner.bufferedBytes).toBe(0);
        },
      ),
    );
  });

  it('splits multi-byte characters across chunks without corrupting them', () => {
    const scanner = new JsonMessageScanner();
    const bytes = Buffer.from(JSON.stringify({ id: 1, result: ['€😀é'] }));
    const received = [...bytes].flatMap((byte) => scanner.push(Uint8Array.of(byte)));
    expect(received).toEqual([{ id: 1, result: ['€😀é'] }]);
  });

  it('holds an incomplete message until the rest arrives', () => {
    const scanner = new JsonMessageScanner();
    expect(scanner.push(Buffer.from('{"id":1,"result":{"a":"}'))).toEqual([]);
    expect(scanner.bufferedBytes).toBeGreaterThan(0);
    expect(scanner.push(Buffer.from('"}}{"id"'))).toEqual([{ id: 1, result: { a: '}' } }]);
    expect(scanner.push(Buffer.from(':2}'))).toEqual([{ id: 2 }]);
  });

  it.each([
    ['a top-level array', '[1,2]', /expected '\{'/],
    ['a top-level string', '"x"', /expected '\{'/],
    ['garbage between messages', '{"a":1}x', /expected '\{'/],
    ['mismatched brackets', '{"a":[1}]', /mismatched '\}'/],
    ['an unclosed array closed by a brace', '{"id":1,"result":[1,}', /mismatched '\}'/],
    ['nesting beyond the bound', `{"a":${'['.repeat(2000)}`, /nested deeper than 1024/],
    ['a bare word', '{a}', /not valid JSON/],
    ['a trailing comma', '{"a":1,}', /not valid JSON/],
  ])('rejects %s with a FramingError', (_what, input, message) => {
    const scanner = new JsonMessageScanner();
    expect(() => scanner.push(Buffer.from(input))).toThrow(FramingError);
    expect(() => new JsonMessageScanner().push(Buffer.from(input))).toThrow(message);
  });

  it('rejects invalid UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    expect(() => new JsonMessageScanner().push(bytes)).toThrow(/not valid UTF-8/);
  });

  it('rejects a message larger than the bound, even while it is still arriving', () => {
    const scanner = new JsonMessageScanner(1024);
    expect(scanner.push(Buffer.from(`{"a":"${'x'.repeat(1000)}`))).toEqual([]);
    expect(() => scanner.push(Buffer.from('x'.repeat(100)))).toThrow(/exceeds 1024 bytes/);
  });

  it('accepts a message exactly at the bound', () => {
    const message = `{"a":"${'x'.repeat(1024 - 8)}"}`;
    expect(Buffer.byteLength(message)).toBe(1024);
    expect(new JsonMessageScanner(1024).push(Buffer.from(message))).toHaveLength(1);
  });

  it('on arbitrary bytes either returns messages or throws a FramingError, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const scanner = new JsonMessageScanner(4096);
        try {
          for (const chunk of chunks) scanner.push(chunk);
        } catch (error) {
          expect(error).toBeInstanceOf(FramingError);
        }
      }),
    );
  });
});
