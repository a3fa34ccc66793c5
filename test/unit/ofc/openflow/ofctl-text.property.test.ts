// Property-based tests of the ovs-ofctl text: the parsers raise only
// OpenFlowSyntaxError, and read back what the formatters print.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import {
  encodeMessage,
  formatActions,
  formatMatch,
  parseActions,
  parseMatch,
  OpenFlowSyntaxError,
} from '../../../../src/ofc/openflow/index.js';
import type { Action } from '../../../../src/ofc/openflow/index.js';
import { matchArb, instructionArb } from '../../../support/openflow-arbitraries.js';

describe('ovs-ofctl text properties', () => {
  it('parsers raise only OpenFlowSyntaxError on arbitrary text', () => {
    // Built from the characters and words flows are made of, so the parsers get past the first token.
    const piece = fc.oneof(
      fc.constantFrom(
        'reg0=',
        'reg7=',
        'metadata=',
        'in_port=',
        'dl_vlan=',
        'vlan_tci=',
        'dl_src=',
        'nw_dst=',
        'ipv6_src=',
        'tp_dst=',
        'tcp',
        'udp6',
        'arp',
        'arp_op=',
        'set_field:',
        '->reg1',
        '->vlan_vid',
        '->ipv6_dst',
        'output:',
        'CONTROLLER:',
        'write_actions(',
        ')',
        'goto_table:',
        'write_metadata:',
        'drop',
        'LOCAL',
        '/',
        ',',
        ':',
        '0x',
        'ff',
        '::',
        '.',
      ),
      fc.string({ unit: fc.constantFrom(...'0123456789abcdefx:./,=()-> '), maxLength: 8 }),
    );
    const text = fc.array(piece, { maxLength: 12 }).map((p) => p.join(''));
    fc.assert(
      fc.property(text, (t) => {
        for (const parse of [parseMatch, parseActions]) {
          try {
            parse(t);
          } catch (error) {
            if (!(error instanceof OpenFlowSyntaxError)) throw error;
          }
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('parseMatch reads back what formatMatch prints', () => {
    fc.assert(
      fc.property(matchArb, (match) => {
        const text = formatMatch(match);
        const parsed = parseMatch(text);
        expect(formatMatch(parsed)).toBe(text);
        // What is parsed is also a valid match on the wire.
        expect(() =>
          encodeMessage({
            type: 'packet-in',
            xid: 0,
            bufferId: 0,
            totalLen: 0,
            reason: 0,
            tableId: 0,
            cookie: 0n,
            match: parsed,
            data: Buffer.alloc(0),
          }),
        ).not.toThrow();
      }),
      { numRuns: 2000 },
    );
  });

  it('parseActions reads back what formatActions prints', () => {
    const expressible = (a: Action): boolean => a.type !== 'other';
    const instructionSet = fc
      .uniqueArray(instructionArb, { selector: (i) => i.type, maxLength: 5 })
      .filter((is) => is.every((i) => !('actions' in i) || i.actions.every(expressible)));
    fc.assert(
      fc.property(instructionSet, (instructions) => {
        const text = formatActions(instructions);
        expect(formatActions(parseActions(text))).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });
});
