// Parsing ovs-ofctl text: what dump-flows and formatMatch/formatActions print,
// the usual aliases, and clear refusals.
import { describe, expect, it } from 'vitest';

import { OfPort, OpenFlowSyntaxError, parseActions, parseMatch } from './index.js';

describe('parseMatch', () => {
  it('reads a line as OVS dumps it', () => {
    expect(
      parseMatch(
        'tcp,reg0=0x1,reg3=0x5/0xf,metadata=0x5/0xff,in_port=3,dl_vlan=5,dl_vlan_pcp=2,dl_dst=AA:bb:cc:dd:ee:ff,nw_src=10.0.0.0/8,tp_dst=80',
      ),
    ).toEqual({
      ethType: 0x0800,
      ipProto: 6,
      regs: { 0: { value: 1 }, 3: { value: 5, mask: 0xf } },
      metadata: 5n,
      metadataMask: 0xffn,
      inPort: 3,
      vlanVid: 5,
      vlanPcp: 2,
      ethDst: 'aa:bb:cc:dd:ee:ff',
      ipv4Src: '10.0.0.0',
      ipv4SrcMask: '255.0.0.0',
      tcpDst: 80,
    });
  });

  it('reads the empty match, reserved ports, IPv6 prefixes, ARP and VLAN TCI forms', () => {
    expect(parseMatch('')).toEqual({});
    expect(parseMatch('in_port=LOCAL')).toEqual({ inPort: OfPort.LOCAL });
    expect(parseMatch('udp6,ipv6_dst=2001:db8::/32,tp_src=53')).toEqual({
      ethType: 0x86dd,
      ipProto: 17,
      ipv6Dst: '2001:db8::',
      ipv6DstMask: 'ffff:ffff::',
      udpSrc: 53,
    });
    expect(parseMatch('arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.0/255.255.255.0,arp_op=1')).toEqual({
      ethType: 0x0806,
      arpSpa: '10.0.0.1',
      arpTpa: '10.0.0.0',
      arpTpaMask: '255.255.255.0',
      arpOp: 1,
    });
    expect(parseMatch('vlan_tci=0x1000/0x1000')).toEqual({ vlanVid: 'tagged' });
    expect(parseMatch('vlan_tci=0x0000/0x1fff')).toEqual({ vlanVid: 'untagged' });
    expect(parseMatch('vlan_tci=0x1100/0x1f00')).toEqual({ vlanVid: 0x100, vlanVidMask: 0xf00 });
    expect(parseMatch('dl_vlan_pcp=3')).toEqual({ vlanVid: 'tagged', vlanPcp: 3 });
  });

  it('accepts the OpenFlow 1.3 names as aliases', () => {
    expect(
      parseMatch('eth_type=0x0800,ip_proto=17,ipv4_dst=10.1.1.1,udp_dst=4000,eth_src=02:00:00:00:00:01'),
    ).toEqual({
      ethType: 0x0800,
      ipProto: 17,
      ipv4Dst: '10.1.1.1',
      udpDst: 4000,
      ethSrc: '02:00:00:00:00:01',
    });
  });

  it.each([
    ['ct_state=+trk', /ct_state=\+trk.*unsupported match field/],
    ['bogus', /'bogus': unknown match keyword/],
    ['reg0=0x100000000', /does not fit in 32 bits/],
    ['reg9=1', /unsupported match field/],
    ['dl_dst=aa:bb', /must be a MAC/],
    ['ip,nw_src=10.0.0.0/33', /prefix \/33 is longer than 32 bits/],
    ['tp_dst=80', /tp_dst=80.*needs tcp or udp/],
    ['nw_proto=6/0xff', /nw_proto takes no mask/],
    ['vlan_tci=0x0005/0x0fff', /without the CFI bit/],
  ])('refuses %s with a reason', (text, reason) => {
    expect(() => parseMatch(text)).toThrow(OpenFlowSyntaxError);
    expect(() => parseMatch(text)).toThrow(reason);
  });
});

describe('parseActions', () => {
  it('reads every instruction and action, in execution order', () => {
    expect(
      parseActions(
        'set_field:0x2->reg1,CONTROLLER:65535,output:3,NORMAL,push_vlan:0x8100,set_field:4101->vlan_vid,pop_vlan,group:4,set_queue:1,' +
          'set_field:fe80::1->ipv6_src,set_field:aa:bb:cc:00:00:01->eth_dst,clear_actions,write_actions(output:2,set_field:0x3->reg2),' +
          'write_metadata:0x1/0xff,goto_table:2',
      ),
    ).toEqual([
      {
        type: 'apply-actions',
        actions: [
          { type: 'set-field', field: { regs: { 1: { value: 2 } } } },
          { type: 'output', port: OfPort.CONTROLLER, maxLen: 0xffff },
          { type: 'output', port: 3 },
          { type: 'output', port: OfPort.NORMAL },
          { type: 'push-vlan', ethType: 0x8100 },
          { type: 'set-field', field: { vlanVid: 5 } },
          { type: 'pop-vlan' },
          { type: 'group', groupId: 4 },
          { type: 'set-queue', queueId: 1 },
          { type: 'set-field', field: { ipv6Src: 'fe80::1' } },
          { type: 'set-field', field: { ethDst: 'aa:bb:cc:00:00:01' } },
        ],
      },
      { type: 'clear-actions' },
      {
        type: 'write-actions',
        actions: [
          { type: 'output', port: 2 },
          { type: 'set-field', field: { regs: { 2: { value: 3 } } } },
        ],
      },
      { type: 'write-metadata', metadata: 1n, mask: 0xffn },
      { type: 'goto-table', tableId: 2 },
    ]);
  });

  it('reads drop, bare port numbers and the short forms', () => {
    expect(parseActions('drop')).toEqual([]);
    expect(parseActions('5,CONTROLLER,strip_vlan,write_metadata:0x7')).toEqual([
      {
        type: 'apply-actions',
        actions: [
          { type: 'output', port: 5 },
          { type: 'output', port: OfPort.CONTROLLER, maxLen: 0xffff },
          { type: 'pop-vlan' },
        ],
      },
      { type: 'write-metadata', metadata: 7n, mask: 0xffffffffffffffffn },
    ]);
  });

  it.each([
    ['resubmit(,2)', /unsupported action/],
    ['goto_table:1,goto_table:2', /goto-table appears twice/],
    ['write_actions(output:1', /unbalanced '\('/],
    ['set_field:5->tun_id', /unsupported set_field target/],
    ['set_field:5->vlan_vid', /must include OFPVID_PRESENT/],
    ['output:1,drop', /drop cannot be combined/],
    ['goto_table:256', /does not fit in 8 bits/],
  ])('refuses %s with a reason', (text, reason) => {
    expect(() => parseActions(text)).toThrow(OpenFlowSyntaxError);
    expect(() => parseActions(text)).toThrow(reason);
  });
});
