// A malformed protocol message closes one connection, never the process: the
// OFC's switch listener (tcp:) receives fuzzed OpenFlow streams on 200 connections,
// some after a valid HELLO, some cut short, while a real ovs-vswitchd bridge is
// connected. Afterwards the bridge is still connected and takes a rule (the
// apply waits for its barrier), and no fake bridge stayed registered. The
// test process is the OFC's process: an exception escaping a socket handler
// would fail the run.
import { connect } from 'node:net';

import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { encodeMessage } from '../../../src/ofc/openflow/index.js';
import { startOfc } from '../../../src/ofc/ofc.js';
import type { RunningOfc } from '../../../src/ofc/ofc.js';
import { startOvs } from '../../support/ovs.js';
import type { OvsInstance } from '../../support/ovs.js';
import { openflowStream } from '../../fuzz/openflow.js';
import { dumpFlows } from '../ofc/ofc-lab.js';

const CONNECTIONS = 200;
const AT_ONCE = 10;
/** How long a garbage connection may stay open before we end it ourselves (an incomplete message waits for more bytes). */
const LINGER_MS = 300;

type Ending = 'closed by the OFC' | 'ended by us';

/** Writes `bytes` on a fresh connection and reports who ended it. */
function sendGarbage(host: string, port: number, bytes: Buffer): Promise<Ending> {
  return new Promise((resolve, reject) => {
    let ending: Ending = 'closed by the OFC';
    const socket = connect({ host, port }, () => {
      socket.write(bytes);
      setTimeout(() => {
        ending = 'ended by us';
        socket.destroy();
      }, LINGER_MS);
    });
    socket.on('data', () => undefined);
    // ECONNRESET when the OFC closes on us mid-write: that is a refusal too.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
    socket.on('close', () => resolve(ending));
  });
}

describe('the switch listener under fuzzed connections', () => {
  let ovs: OvsInstance;
  let ofc: RunningOfc;

  beforeAll(async () => {
    ovs = await startOvs({ name: 'relgb', rootLink: true });
    ofc = await startOfc({
      listen: `tcp:${ovs.rootLink!.rootAddress}:0`,
      control: '127.0.0.1:0',
      logger: pino({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'silent' }),
    });
    await ovs.addBridge('br0', {
      controller: ofc.switchTarget,
      failMode: 'secure',
      protocols: ['OpenFlow13'],
    });
    await ofc.registry.waitForBridge('br0', 30_000);
  });

  afterAll(async () => {
    await ofc?.stop('test finished');
    await ovs?.stop();
  });

  it('closes only the offending connections and keeps serving the real switch', async () => {
    const [host, port] = ofc.switchTarget.slice('tcp:'.length).split(':') as [string, string];
    const hello = encodeMessage({ type: 'hello', xid: 1, versions: [4] });
    const inputs = fc.sample(fc.tuple(fc.boolean(), openflowStream), CONNECTIONS);
    const endings: Ending[] = [];
    for (let i = 0; i < inputs.length; i += AT_ONCE) {
      endings.push(
        ...(await Promise.all(
          inputs
            .slice(i, i + AT_ONCE)
            .map(([greet, garbage]) =>
              sendGarbage(host, Number(port), greet ? Buffer.concat([hello, garbage]) : garbage),
            ),
        )),
      );
    }
    // Most damaged streams are refused outright; a run where the OFC closed nothing tested nothing.
    expect(endings.filter((e) => e === 'closed by the OFC').length).toBeGreaterThan(CONNECTIONS / 4);

    expect(ofc.registry.bridges()).toEqual([expect.objectContaining({ name: 'br0', connected: true })]);
    const bridge = ofc.registry.bridge('br0')!;
    await bridge.apply([
      {
        op: 'add',
        rule: {
          table: 0,
          priority: 11,
          cookie: 0xbn,
          match: {},
          actions: [{ kind: 'output', port: 'normal' }],
        },
      },
    ]);
    expect(await dumpFlows(ovs, 'br0')).toContain('cookie=0xb, priority=11 actions=NORMAL');
  });
});
