import { describe, expect, it } from 'vitest';

import { OfPort } from '../openflow/index.js';
import { OfcError } from '../control/errors.js';
import { savedFlowToFlowMod } from './saved-flows.js';

const flow = (match: string, actions: string) => ({
  bridge: 'br0',
  tableId: 0,
  priority: 10,
  cookie: '0x2a',
  match,
  actions,
});

describe('saved flows back to FLOW_MODs', () => {
  it('keeps table, priority and cookie and parses match and actions', () => {
    const mod = savedFlowToFlowMod(flow('udp,in_port=3,tp_dst=53', 'NORMAL'));
    expect(mod).toMatchObject({ command: 'add', tableId: 0, priority: 10, cookie: 42n });
    expect(mod.match).toMatchObject({ ethType: 0x0800, ipProto: 17, inPort: 3, udpDst: 53 });
    expect(mod.instructions).toEqual([
      { type: 'apply-actions', actions: [{ type: 'output', port: OfPort.NORMAL }] },
    ]);
    expect(savedFlowToFlowMod(flow('', 'drop')).instructions).toEqual([]);
  });

  it('refuses what it cannot parse as a bad request naming the flow', () => {
    const refusal = (() => {
      try {
        savedFlowToFlowMod(flow('', 'frobnicate:1'));
      } catch (error) {
        return error;
      }
    })();
    expect(refusal).toBeInstanceOf(OfcError);
    expect(refusal).toMatchObject({
      status: 400,
      message: /flow on br0 \(table 0, priority 10\).*frobnicate/,
    });
    expect(() => savedFlowToFlowMod({ ...flow('', 'NORMAL'), cookie: 'zz' })).toThrow(/cookie 'zz'/);
  });
});
