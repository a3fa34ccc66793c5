import { describe, expect, it } from 'vitest';

import { decodeOperationResult, decodeTableUpdates, encodeOperation } from './protocol.js';
import type { Operation } from './protocol.js';
import { NamedUuid, OvsdbValueError, Uuid } from './values.js';

const UUID = '0d2ba9a1-2c3b-4a3f-9f1e-6c1c2b3a4d5e';

describe('encodeOperation', () => {
  it('writes each operation in the shape of RFC 7047 section 5.2', () => {
    expect(
      encodeOperation({
        op: 'insert',
        table: 'Port',
        row: { name: 'p1', interfaces: [new NamedUuid('i1')], external_ids: { 'violin-vm': 'ns/vm' } },
        uuidName: 'p1',
      }),
    ).toEqual({
      op: 'insert',
      table: 'Port',
      row: {
        name: 'p1',
        interfaces: ['set', [['named-uuid', 'i1']]],
        external_ids: ['map', [['violin-vm', 'ns/vm']]],
      },
      'uuid-name': 'p1',
    });
    expect(
      encodeOperation({ op: 'select', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['ports'] }),
    ).toEqual({ op: 'select', table: 'Bridge', where: [['name', '==', 'br0']], columns: ['ports'] });
    expect(
      encodeOperation({ op: 'update', table: 'Bridge', where: [], row: { fail_mode: 'secure' } }),
    ).toEqual({
      op: 'update',
      table: 'Bridge',
      where: [],
      row: { fail_mode: 'secure' },
    });
    expect(
      encodeOperation({
        op: 'mutate',
        table: 'Open_vSwitch',
        where: [['_uuid', '==', new Uuid(UUID)]],
        mutations: [
          ['next_cfg', '+=', 1],
          ['bridges', 'delete', [new Uuid(UUID)]],
        ],
      }),
    ).toEqual({
      op: 'mutate',
      table: 'Open_vSwitch',
      where: [['_uuid', '==', ['uuid', UUID]]],
      mutations: [
        ['next_cfg', '+=', 1],
        ['bridges', 'delete', ['set', [['uuid', UUID]]]],
      ],
    });
    expect(encodeOperation({ op: 'delete', table: 'Controller', where: [] })).toEqual({
      op: 'delete',
      table: 'Controller',
      where: [],
    });
    // A wait whose values need no conversion goes on the wire as it is.
    const wait: Operation = {
      op: 'wait',
      table: 'Bridge',
      where: [['name', '==', 'br0']],
      columns: ['name'],
      until: '==',
      rows: [{ name: 'br0' }],
      timeout: 0,
    };
    expect(encodeOperation(wait)).toEqual(wait);
    expect(encodeOperation({ op: 'comment', comment: 'why' })).toEqual({ op: 'comment', comment: 'why' });
  });

  it('names the column of a value it cannot encode', () => {
    expect(() =>
      encodeOperation({ op: 'insert', table: 'Interface', row: { ofport_request: Number.NaN } }),
    ).toThrow(/Interface\.ofport_request/);
  });
});

describe('decoding results and updates', () => {
  it('decodes insert, select and count results', () => {
    expect(decodeOperationResult({ uuid: ['uuid', UUID] }, 'r')).toEqual({ uuid: UUID });
    expect(decodeOperationResult({ count: 2 }, 'r')).toEqual({ count: 2 });
    expect(decodeOperationResult(null, 'r')).toEqual({});
    const { rows } = decodeOperationResult({ rows: [{ ports: ['set', [['uuid', UUID]]] }] }, 'r');
    expect(rows?.[0]?.ports).toEqual([new Uuid(UUID)]);
  });

  it.each([
    ['a uuid that is a string', { uuid: UUID }, /r\.uuid must be \["uuid", …\]/],
    ['rows that are not an array', { rows: {} }, /r\.rows must be an array/],
    ['a count that is not a number', { count: '2' }, /r\.count must be a number/],
    ['a row that is not an object', { rows: [5] }, /r\.rows\[0\]: a row must be a JSON object/],
  ])('rejects %s', (_what, wire, message) => {
    expect(() => decodeOperationResult(wire, 'r')).toThrow(OvsdbValueError);
    expect(() => decodeOperationResult(wire, 'r')).toThrow(message);
  });

  it('decodes table updates, keeping old and new apart', () => {
    expect(
      decodeTableUpdates({ Port: { [UUID]: { old: { name: 'a' }, new: { name: 'b', tag: ['set', []] } } } }),
    ).toEqual({ Port: { [UUID]: { old: { name: 'a' }, new: { name: 'b', tag: [] } } } });
  });

  it.each([
    ['an array', []],
    ['a table that is not an object', { Port: 1 }],
    ['a row change that is not an object', { Port: { [UUID]: 'x' } }],
    ['a malformed value', { Port: { [UUID]: { new: { c: ['map', 1] } } } }],
  ])('rejects table updates that are %s', (_what, wire) => {
    expect(() => decodeTableUpdates(wire)).toThrow(OvsdbValueError);
  });
});
