// The ovs-ofctl formatter. The integration test compares it with a real
// switch's dump-flows; these cases pin the corners one at a time.
import { describe, expect, it } from 'vitest';

import {
  FlowModFlags,
  OfPort,
  OpenFlowEncodeError,
  formatActions,
  formatFlow,
  formatMatch,
} from './index.js';
import { bytesToIpv6, ipv6ToBytes } from './wire.js';

describe('formatMatch', () => {
  it('is empty for the empty match', () => expect(formatMatch({})).toBe(''));

  it('uses the protocol shorthand and drops what it implies, in OVS order', () => {
    expect(
      formatMatch({
        tcpDst: 80,
        ipProto: 6,
        ethType: 0x0800,
        inPort: 3,
        regs: { 1: { value: 0x10 }, 0: { value: 1, mask: 0xff } },
        ethDst: 'AA:BB:CC:DD:EE:FF'.toLowerCase(),
        ipv4Src: '10.1.2.3',
        ipv4SrcMask: '255.255.0.0',
      }),
    ).toBe('tcp,reg0=0x1/0xff,reg1=0x10,in_port=3,dl_dst=aa:bb:cc:dd:ee:ff,nw_src=10.1.0.0/16,tp_dst=80');
    expect(formatMatch({ ethType: 0x86dd, ipProto: 58 })).toBe('icmp6');
    expect(formatMatch({ ethType: 0x0800, ipProto: 47 })).toBe('ip,nw_proto=47');
    expect(formatMatch({ ethType: 0x0806, arpOp: 2, arpTpa: '10.0.0.9' })).toBe(
      'arp,arp_tpa=10.0.0.9,arp_op=2',
    );
    expect(formatMatch({ ethType: 0x88cc })).toBe('dl_type=0x88cc');
  });

  it('prints masks as OVS does: CIDR when contiguous, full mask otherwise, nothing when exact or empty', () => {
    expect(formatMatch({ ethType: 0x0800, ipv4Dst: '10.0.0.1', ipv4DstMask: '255.255.255.255' })).toBe(
      'ip,nw_dst=10.0.0.1',
    );
    expect(formatMatch({ ethType: 0x0800, ipv4Dst: '10.0.0.1', ipv4DstMask: '255.0.255.0' })).toBe(
      'ip,nw_dst=10.0.0.0/255.0.255.0',
    );
    expect(formatMatch({ ethType: 0x0800, ipv4Dst: '10.0.0.1', ipv4DstMask: '0.0.0.0' })).toBe('ip');
    expect(
      formatMatch({ ethType: 0x86dd, ipv6Src: '2001:db8::1', ipv6SrcMask: 'ffff:ffff:ffff:ffff::' }),
    ).toBe('ipv6,ipv6_src=2001:db8::/64');
    expect(formatMatch({ ethSrc: '01:00:00:00:00:01', ethSrcMask: '01:00:00:00:00:00' })).toBe(
      'dl_src=01:00:00:00:00:00/01:00:00:00:00:00',
    );
    expect(formatMatch({ metadata: 0xffn, metadataMask: 0xffffffffffffffffn })).toBe('metadata=0xff');
    expect(formatMatch({ regs: { 2: { value: 5, mask: 0 } } })).toBe('');
  });

  it('folds vlan_vid and vlan_pcp into dl_vlan/dl_vlan_pcp or vlan_tci', () => {
    expect(formatMatch({ vlanVid: 10 })).toBe('dl_vlan=10');
    expect(formatMatch({ vlanVid: 10, vlanPcp: 5 })).toBe('dl_vlan=10,dl_vlan_pcp=5');
    expect(formatMatch({ vlanVid: 'tagged', vlanPcp: 5 })).toBe('dl_vlan_pcp=5');
    expect(formatMatch({ vlanVid: 'tagged' })).toBe('vlan_tci=0x1000/0x1000');
    expect(formatMatch({ vlanVid: 'untagged' })).toBe('vlan_tci=0x0000/0x1fff');
    expect(formatMatch({ vlanVid: 0x123, vlanVidMask: 0xf00 })).toBe('vlan_tci=0x1100/0x1f00');
  });

  it('names reserved ports', () => {
    expect(formatMatch({ inPort: OfPort.LOCAL })).toBe('in_port=LOCAL');
    expect(formatMatch({ inPort: OfPort.CONTROLLER })).toBe('in_port=CONTROLLER');
  });

  it('refuses OXM fields it cannot express rather than dropping them', () => {
    expect(() =>
      formatMatch({ otherFields: [{ oxmClass: 1, field: 105, hasMask: false, payload: Buffer.alloc(4) }] }),
    ).toThrow(OpenFlowEncodeError);
  });
});

describe('formatActions', () => {
  it('is drop for no instructions', () => expect(formatActions([])).toBe('drop'));

  it('prints instructions in execution order, as OVS does', () => {
    expect(
      formatActions([
        { type: 'goto-table', tableId: 4 },
        { type: 'write-metadata', metadata: 0x10n, mask: 0xf0n },
        { type: 'write-actions', actions: [{ type: 'output', port: 1 }] },
        { type: 'clear-actions' },
        { type: 'apply-actions', actions: [{ type: 'pop-vlan' }] },
      ]),
    ).toBe('pop_vlan,clear_actions,write_actions(output:1),write_metadata:0x10/0xf0,goto_table:4');
    expect(formatActions([{ type: 'write-metadata', metadata: 1n, mask: 0xffffffffffffffffn }])).toBe(
      'write_metadata:0x1',
    );
  });

  it('prints every action', () => {
    expect(
      formatActions([
        {
          type: 'apply-actions',
          actions: [
            { type: 'output', port: 7 },
            { type: 'output', port: OfPort.CONTROLLER },
            { type: 'output', port: OfPort.CONTROLLER, maxLen: 64 },
            { type: 'output', port: OfPort.NORMAL },
            { type: 'push-vlan' },
            { type: 'set-field', field: { vlanVid: 9 } },
            { type: 'set-field', field: { regs: { 3: { value: 255 } } } },
            { type: 'set-field', field: { metadata: 2n } },
            { type: 'set-field', field: { ethSrc: '02:00:00:00:00:01' } },
            { type: 'set-field', field: { ipv6Dst: '2001:0db8:0:0:0:0:0:1' } },
            { type: 'set-field', field: { tcpDst: 8080 } },
            { type: 'set-field', field: { inPort: OfPort.LOCAL } },
            { type: 'group', groupId: 3 },
            { type: 'set-queue', queueId: 1 },
          ],
        },
      ]),
    ).toBe(
      'output:7,CONTROLLER:65535,CONTROLLER:64,NORMAL,push_vlan:0x8100,set_field:4105->vlan_vid,' +
        'set_field:0xff->reg3,set_field:0x2->metadata,set_field:02:00:00:00:00:01->eth_src,' +
        'set_field:2001:db8::1->ipv6_dst,set_field:8080->tcp_dst,set_field:LOCAL->in_port,group:3,set_queue:1',
    );
  });

  it('refuses actions it cannot express', () => {
    expect(() =>
      formatActions([
        { type: 'apply-actions', actions: [{ type: 'other', actionType: 24, body: Buffer.alloc(4) }] },
      ]),
    ).toThrow(/action type 24 has no ovs-ofctl form/);
  });
});

describe('formatFlow', () => {
  it('is a dump-flows line: cookie and table when set, timeouts, flags, priority unless the default', () => {
    expect(
      formatFlow({
        cookie: 0xan,
        tableId: 2,
        priority: 10,
        idleTimeout: 5,
        flags: FlowModFlags.SEND_FLOW_REM | FlowModFlags.CHECK_OVERLAP,
        match: { ethType: 0x0806 },
        instructions: [],
      }),
    ).toBe('cookie=0xa, table=2, idle_timeout=5, send_flow_rem priority=10,arp actions=drop');
    expect(formatFlow({ cookie: 0n, tableId: 0, priority: 0x8000, match: {}, instructions: [] })).toBe(
      'actions=drop',
    );
  });
});

describe('IPv6 text', () => {
  it.each([
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
    ['1:0:1:1:1:1:1:1', '1:0:1:1:1:1:1:1'],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1'],
    ['0:0:0:0:0:0:a00:1', '::10.0.0.1'],
    ['::1:0:0:0:1', '::1:0:0:0:1'],
    ['FE80::AB', 'fe80::ab'],
  ])('%s is %s, as inet_ntop prints it', (text, canonical) => {
    expect(bytesToIpv6(ipv6ToBytes(text, 'test'))).toBe(canonical);
  });
});
