import { describe, expect, it } from 'vitest';

import { OfPort } from '../openflow/index.js';
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
  it('reads matches, shorthands and transport ports', () => {
    const mod = savedFlowToFlowMod(
      flow('udp,in_port=3,dl_dst=aa:bb:cc:dd:ee:ff,nw_src=10.0.0.0/8,tp_dst=53,reg2=0x5/0xf', 'NORMAL'),
    );
    expect(mod.cookie).toBe(42n);
    expect(mod.match).toEqual({
      ethType: 0x0800,
      ipProto: 17,
      inPort: 3,
      ethDst: 'aa:bb:cc:dd:ee:ff',
      ipv4Src: '10.0.0.0',
      ipv4SrcMask: '255.0.0.0',
      udpDst: 53,
      regs: { 2: { value: 5, mask: 15 } },
    });
    expect(mod.instructions).toEqual([
      { type: 'apply-actions', actions: [{ type: 'output', port: OfPort.NORMAL }] },
    ]);
  });

  it('reads actions: ports, controller, registers, goto_table, drop', () => {
    expect(
      savedFlowToFlowMod(flow('', 'output:2,CONTROLLER:128,set_field:0x6->reg1,goto_table:4')).instructions,
    ).toEqual([
      {
        type: 'apply-actions',
        actions: [
          { type: 'output', port: 2 },
          { type: 'output', port: OfPort.CONTROLLER, maxLen: 128 },
          { type: 'set-field', field: { regs: { 1: { value: 6 } } } },
        ],
      },
      { type: 'goto-table', tableId: 4 },
    ]);
    expect(savedFlowToFlowMod(flow('', 'drop')).instructions).toEqual([]);
  });

  it('refuses what it does not understand, naming it', () => {
    expect(() => savedFlowToFlowMod(flow('tun_id=5', 'NORMAL'))).toThrow(/unsupported match field 'tun_id'/);
    expect(() => savedFlowToFlowMod(flow('tp_dst=80', 'NORMAL'))).toThrow(/tp_dst needs tcp or udp/);
    expect(() => savedFlowToFlowMod(flow('', 'learn(table=1)'))).toThrow(/unsupported action/);
    expect(() => savedFlowToFlowMod({ ...flow('', 'NORMAL'), cookie: 'zz' })).toThrow(/cookie 'zz'/);
  });
});
