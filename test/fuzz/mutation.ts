// Byte-level mutation of valid encodings, the way coverage-less fuzzers (radamsa,
// AFL's havoc stage) find decoder bugs: start from a message the decoder
// accepts and damage it a little, so that most inputs get past the first
// length check and reach the deep parts of the decoder.
import fc from 'fast-check';

/** Values that sit on the edges of length and count fields. */
const INTERESTING_BYTES = [0x00, 0x01, 0x07, 0x08, 0x7f, 0x80, 0xfe, 0xff];
const INTERESTING_U16 = [0, 1, 4, 7, 8, 15, 16, 0x7fff, 0x8000, 0xfffe, 0xffff];

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'u16'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'delete'; at: number; length: number };

/**
 * Positions are fractions of the current length, so one mutation list fits any
 * input. Uniform (no bias): fast-check's biased doubles cluster at 0 and 1,
 * which put most mutations on the first or last byte and most cuts in one place.
 */
const position = fc.noBias(fc.integer({ min: 0, max: 0xffff })).map((n) => n / 0x10000);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant('byte' as const),
    at: position,
    value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 0xff })),
  }),
  fc.record({ kind: fc.constant('u16' as const), at: position, value: fc.constantFrom(...INTERESTING_U16) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ maxLength: 16 }) }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    at: position,
    length: fc.integer({ min: 1, max: 64 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 16 }) }),
);

function apply(input: Buffer, change: Mutation): Buffer {
  const at = Math.floor(change.at * input.length);
  switch (change.kind) {
    case 'flip':
    case 'byte':
    case 'u16': {
      if (input.length === 0) return input;
      const out = Buffer.from(input);
      if (change.kind === 'flip') out[at] = (out[at] as number) ^ (1 << change.bit);
      else if (change.kind === 'byte') out[at] = change.value;
      else if (at + 2 <= out.length) out.writeUInt16BE(change.value, at);
      return out;
    }
    case 'truncate':
      return input.subarray(0, at);
    case 'insert':
      return Buffer.concat([input.subarray(0, at), change.bytes, input.subarray(at)]);
    case 'duplicate':
      return Buffer.concat([
        input.subarray(0, at),
        input.subarray(at, at + change.length),
        input.subarray(at),
      ]);
    case 'delete':
      return Buffer.concat([input.subarray(0, at), input.subarray(at + change.length)]);
  }
}

/** An input from `valid` with `minMutations` to 6 random mutations applied. */
export function mutated(valid: fc.Arbitrary<Buffer>, minMutations = 1): fc.Arbitrary<Buffer> {
  return fc
    .tuple(valid, fc.array(mutation, { minLength: minMutations, maxLength: 6 }))
    .map(([input, changes]) => changes.reduce(apply, input));
}

/** A valid input from `corpus` with 1 to 6 random mutations applied. */
export function mutatedFrom(corpus: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return mutated(fc.constantFrom(...corpus));
}

/** Splits `input` at random points, so stream readers see every way a message can straddle chunks. */
export function chunked(input: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer[]> {
  return fc.tuple(input, fc.array(position, { maxLength: 8, size: 'max' })).map(([bytes, cuts]) => {
    const offsets = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
    const chunks: Buffer[] = [];
    let start = 0;
    for (const offset of [...offsets, bytes.length]) {
      chunks.push(bytes.subarray(start, offset));
      start = offset;
    }
    return chunks;
  });
}
