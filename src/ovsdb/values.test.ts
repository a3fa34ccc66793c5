import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  NamedUuid,
  OvsdbValueError,
  Uuid,
  asOptional,
  asSet,
  asStringMap,
  asUuids,
  decodeValue,
  encodeValue,
} from './values.js';
import type { Atom, OvsdbValue } from './values.js';

const atom: fc.Arbitrary<Atom> = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((number) => (number === 0 ? 0 : number)), // JSON has no -0
  fc.boolean(),
  fc.uuid().map((value) => new Uuid(value)),
  fc.stringMatching(/^[_a-zA-Z][_a-zA-Z0-9]{0,10}$/).map((name) => new NamedUuid(name)),
);
const value: fc.Arbitrary<OvsdbValue> = fc.oneof(
  atom,
  fc.array(atom, { maxLength: 5 }),
  fc.array(fc.tuple(atom, atom), { maxLength: 5 }).map((pairs) => new Map(pairs)),
);

describe('OVSDB value codec', () => {
  it('round-trips every value through the wire form and its JSON text', () => {
    fc.assert(
      fc.property(value, (original) => {
        const wire = JSON.parse(JSON.stringify(encodeValue(original)));
        expect(decodeValue(wire)).toEqual(original);
      }),
    );
  });

  it('encodes the notation of RFC 7047 section 5.1', () => {
    const uuid = '0d2ba9a1-2c3b-4a3f-9f1e-6c1c2b3a4d5e';
    expect(encodeValue('br0')).toBe('br0');
    expect(encodeValue(new Uuid(uuid))).toEqual(['uuid', uuid]);
    expect(encodeValue(new NamedUuid('row1'))).toEqual(['named-uuid', 'row1']);
    expect(encodeValue(['OpenFlow13'])).toEqual(['set', ['OpenFlow13']]);
    expect(encodeValue([])).toEqual(['set', []]);
    expect(encodeValue({ 'violin-vm': 'a' })).toEqual(['map', [['violin-vm', 'a']]]);
    expect(encodeValue(new Map<Atom, Atom>([[1, true]]))).toEqual(['map', [[1, true]]]);
  });

  it('reads a bare atom as a set of one and an empty set as "none"', () => {
    expect(asSet(decodeValue('OpenFlow13'))).toEqual(['OpenFlow13']);
    expect(asOptional(decodeValue(['set', []]))).toBeUndefined();
    expect(asOptional(decodeValue(5))).toBe(5);
    expect(() => asOptional(decodeValue(['set', [1, 2]]))).toThrow(OvsdbValueError);
    expect(asStringMap(decodeValue(['map', [['a', 'b']]]))).toEqual({ a: 'b' });
    expect(asStringMap(decodeValue(['set', []]))).toEqual({});
    expect(asUuids(decodeValue(['uuid', '0d2ba9a1-2c3b-4a3f-9f1e-6c1c2b3a4d5e']))).toEqual([
      '0d2ba9a1-2c3b-4a3f-9f1e-6c1c2b3a4d5e',
    ]);
  });

  it.each([
    ['null', null],
    ['an object', { a: 1 }],
    ['an unknown tag', ['list', []]],
    ['a set whose elements are not an array', ['set', 'x']],
    ['a map whose pairs are not pairs', ['map', [['a']]]],
    ['a nested set', ['set', [['set', []]]]],
    ['a malformed UUID', ['uuid', 'not-a-uuid']],
    ['a uuid that is not a string', ['uuid', 5]],
    ['a bad named-uuid', ['named-uuid', '1abc']],
  ])('rejects %s with an OvsdbValueError', (_what, wire) => {
    expect(() => decodeValue(wire, 'Bridge.ports')).toThrow(OvsdbValueError);
    expect(() => decodeValue(wire, 'Bridge.ports')).toThrow(/Bridge\.ports|UUID|named-uuid/);
  });

  it('refuses to encode what OVSDB cannot carry', () => {
    expect(() => encodeValue(Number.NaN)).toThrow(OvsdbValueError);
    expect(() => encodeValue([Number.POSITIVE_INFINITY])).toThrow(/value\[0\]/);
    expect(() => encodeValue(null as unknown as Atom)).toThrow(OvsdbValueError);
  });

  it('on arbitrary JSON either decodes or throws an OvsdbValueError, nothing else', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (wire) => {
        try {
          decodeValue(wire);
        } catch (error) {
          expect(error).toBeInstanceOf(OvsdbValueError);
        }
      }),
    );
  });
});
