// The failure new users met (issue 19), with the real parts it involves: a
// snapshot asking for bufferTier datapath, on a real `violin ofc` started
// without --datapath-buffer (as the chart and the lab start it) and real Open
// vSwitch bridges whose fail modes the operator would secure through OVSDB. It
// must end Failed within seconds (not retry until spec.timeout), say which field
// to change, and never touch a bridge: the operator asks the OFC what it serves
// (GET /v1/capabilities) before it secures anything, so each bridge keeps the
// fail mode it had all along: one standalone, one with none set (OVS's default).
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createLogger } from '../../../src/operator/log.js';
import { Manager } from '../../../src/operator/manager.js';
import { OpenVswitchDb, OvsdbClient } from '../../../src/ovsdb/index.js';
import { OvsdbServers } from '../../../src/reconcilers/environment.js';
import { registerControllers } from '../../../src/reconcilers/index.js';
import { FAILURE_CLASSES } from '../../../src/reconcilers/shared/failure-classes.js';
import { startOvs, type OvsInstance } from '../../support/ovs.js';
import { waitUntil } from '../ofc/ofc-lab.js';
import { startOfcProcess, type OfcProcess } from '../reliability/ofc-process.js';
import { Harness } from './harness.js';

/** The harness maps every VM to br-leaf1; br-leaf2 is a second bridge the arm would program. */
const BRIDGES = [
  ['br-leaf1', 'standalone'],
  ['br-leaf2', undefined],
] as const;

describe('a buffer tier the real OFC was started without', () => {
  let h: Harness;
  let ovs: OvsInstance;
  let ofc: OfcProcess;
  let manager: Manager;
  let client: OvsdbClient;
  let db: OpenVswitchDb;

  beforeAll(async () => {
    h = await Harness.create('fcreal');
    ovs = await startOvs({ name: 'fcreal' });
    const controller = `unix:${join(ovs.runDir, 'ofc.sock')}`;
    ofc = await startOfcProcess(controller);
    for (const [bridge, failMode] of BRIDGES) {
      await ovs.addBridge(bridge, {
        controller,
        ...(failMode ? { failMode } : {}),
        protocols: ['OpenFlow13'],
      });
    }
    await waitUntil('both bridges to connect', async () => (await ofc.client.bridges()).length === 2);
    client = await OvsdbClient.connect(`unix:${ovs.dbSocket}`);
    db = new OpenVswitchDb(client, { waitForSwitch: false });
    manager = new Manager({
      kubeConfig: h.kc,
      log: createLogger({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'error' }),
      metricsBindAddress: '0',
      healthProbeBindAddress: '0',
    });
    registerControllers(manager, {
      ofc: ofc.client,
      agents: h.agents,
      network: h.network,
      failModes: new OvsdbServers([`unix:${ovs.dbSocket}`]),
      bundles: h.bundles,
      namespace: h.ns.name,
      pollMs: 50,
    });
    await manager.start();
  });

  afterAll(async () => {
    await manager?.stop();
    client?.close();
    await ofc?.stop('SIGTERM');
    await ovs?.stop();
    await h?.close();
  });

  it('fails the snapshot naming spec.network.bufferTier, and no bridge is ever secured', async () => {
    const before = await Promise.all(BRIDGES.map(([bridge]) => db.getFailMode(bridge)));
    expect(before).toEqual(['standalone', undefined]);
    await h.createSnapshot('datapath', { network: { bufferTier: 'datapath' } });
    // Well within spec.timeout (10m): the refusal ends it, no backoff until the timeout.
    const snap = await h.waitForPhase('datapath', ['Succeeded', 'Failed'], 30_000);
    const status = snap.status ?? {};
    const cls = FAILURE_CLASSES.bufferTierUnavailable;
    expect(status.phase, JSON.stringify(status)).toBe('Failed');
    expect(status.failureReason).toBe(cls.reason);
    expect(status.failureMessage).toContain(
      "bufferTier 'datapath' is not served by this OpenFlow controller (it serves controller)",
    );
    expect(status.failureMessage).toContain(`${cls.field}: ${cls.remedy}`);
    expect(status.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ reason: cls.reason });
    await h.waitForEvent('datapath', cls.reason);
    const events = await h.events('datapath');
    expect(events.find((e) => e.reason === cls.reason)?.type).toBe('Warning');
    // Refused before the arm: no bridge was secured (so none had to be released), none was armed.
    expect(events.map((e) => e.reason)).not.toContain('BridgesSecured');
    expect(events.map((e) => e.reason)).not.toContain('Armed');
    expect(await Promise.all(BRIDGES.map(([bridge]) => db.getFailMode(bridge)))).toEqual(before);
    expect(await h.migrations()).toEqual([]);
  });
});
