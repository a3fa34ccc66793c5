// The RFC 7047 client against a real ovsdb-server: every operation type,
// named-uuid references, atomicity, monitor and monitor_cancel, TCP and the
// server's echo probe. A small test database is added to the fixture's
// ovsdb-server (ovsdb-server/add-db) so the operations can be exercised
// without ovs-vswitchd reacting to them; results are cross-checked with
// ovsdb-client, OVS's own client.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NamedUuid, OvsdbClient, OvsdbTransactionError, asUuids } from '../../../src/ovsdb/index.js';
import type { Operation, TableUpdates } from '../../../src/ovsdb/index.js';
import { run } from '../../support/netns.js';
import { OVSDB_TCP_PORT, startOvs } from '../../support/ovs.js';
import type { OvsInstance } from '../../support/ovs.js';
import { requireTool } from '../../support/require-tool.js';

const DB = 'Violin_Test';
const SCHEMA = {
  name: DB,
  version: '1.0.0',
  tables: {
    Account: {
      columns: {
        name: { type: 'string' },
        balance: { type: 'integer' },
        tags: { type: { key: 'string', min: 0, max: 'unlimited' } },
        props: { type: { key: 'string', value: 'string', min: 0, max: 'unlimited' } },
        owner: { type: { key: { type: 'uuid', refTable: 'Owner' }, min: 0, max: 1 } },
      },
      indexes: [['name']],
      isRoot: true,
    },
    Owner: { columns: { name: { type: 'string' } } },
  },
};

/** Waits (bounded) until `predicate` holds. */
async function eventually(predicate: () => boolean, what: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    if (predicate()) return;
    await sleep(50);
  }
  throw new Error(`never saw ${what}`);
}

describe('OvsdbClient against a real ovsdb-server', () => {
  let ovs: OvsInstance;
  let client: OvsdbClient;

  /** OVS's own client, as the independent check: a read-only transaction's JSON result. */
  async function query(operation: object): Promise<unknown> {
    const { stdout } = await run('ovsdb-client', [
      'query',
      `unix:${ovs.dbSocket}`,
      JSON.stringify([DB, operation]),
    ]);
    return JSON.parse(stdout);
  }

  /** A write by another client, to be seen through our monitor. */
  async function externalTransact(...operations: object[]): Promise<void> {
    await run('ovsdb-client', ['transact', `unix:${ovs.dbSocket}`, JSON.stringify([DB, ...operations])]);
  }

  beforeAll(async () => {
    requireTool('ovsdb-client', 'Debian package openvswitch-common');
    ovs = await startOvs({ name: 'rpc', rootLink: true });
    const schemaFile = join(ovs.runDir, 'test.ovsschema');
    await writeFile(schemaFile, JSON.stringify(SCHEMA));
    await run('ovsdb-tool', ['create', join(ovs.runDir, 'test.db'), schemaFile]);
    await ovs.appctl('ovsdb-server', ['ovsdb-server/add-db', join(ovs.runDir, 'test.db')]);
    client = await OvsdbClient.connect(`unix:${ovs.dbSocket}`);
  });

  afterAll(async () => {
    client?.close();
    await ovs?.stop();
  });

  it('lists databases and fetches a schema', async () => {
    expect(await client.listDbs()).toEqual(expect.arrayContaining(['Open_vSwitch', DB]));
    const schema = await client.getSchema(DB);
    expect(schema.name).toBe(DB);
    expect(Object.keys(schema.tables as object).sort()).toEqual(['Account', 'Owner']);
  });

  it('inserts rows that reference each other by named-uuid, in one transaction', async () => {
    const [owner, account, comment] = await client.transact(DB, [
      { op: 'insert', table: 'Owner', row: { name: 'alice' }, uuidName: 'alice' },
      {
        op: 'insert',
        table: 'Account',
        row: {
          name: 'acc1',
          balance: 100,
          tags: ['a', 'b'],
          props: { vm: 'default/vm-a' },
          owner: new NamedUuid('alice'),
        },
      },
      { op: 'comment', comment: 'violin integration test' },
    ]);
    expect(owner?.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(account?.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(comment).toEqual({});

    const [selected] = await client.transact(DB, [
      { op: 'select', table: 'Account', where: [['name', '==', 'acc1']] },
    ]);
    const row = selected?.rows?.[0];
    expect(row?.balance).toBe(100);
    expect(row?.tags).toEqual(['a', 'b']);
    expect(row?.props).toEqual(new Map([['vm', 'default/vm-a']]));
    expect(asUuids(row?.owner)).toEqual([owner?.uuid]);
    expect(asUuids(row?._uuid)).toEqual([account?.uuid]);

    expect(
      await query({
        op: 'select',
        table: 'Account',
        where: [['name', '==', 'acc1']],
        columns: ['owner', 'props', 'tags'],
      }),
    ).toEqual([
      {
        rows: [
          {
            owner: ['uuid', owner?.uuid],
            props: ['map', [['vm', 'default/vm-a']]],
            tags: ['set', ['a', 'b']],
          },
        ],
      },
    ]);
  });

  it('updates, mutates and deletes, reporting how many rows matched', async () => {
    await client.transact(DB, [
      { op: 'insert', table: 'Account', row: { name: 'acc2', balance: 10 } },
      { op: 'insert', table: 'Account', row: { name: 'acc3', balance: 10 } },
    ]);
    const [updated, mutated, deleted] = await client.transact(DB, [
      { op: 'update', table: 'Account', where: [['name', '==', 'acc2']], row: { props: { k: 'v' } } },
      {
        op: 'mutate',
        table: 'Account',
        where: [['balance', '==', 10]],
        mutations: [
          ['balance', '+=', 5],
          ['tags', 'insert', ['new']],
        ],
      },
      { op: 'delete', table: 'Account', where: [['name', '==', 'acc3']] },
    ]);
    expect(updated?.count).toBe(1);
    expect(mutated?.count).toBe(2);
    expect(deleted?.count).toBe(1);
    expect(
      await query({
        op: 'select',
        table: 'Account',
        where: [['name', 'includes', 'acc2']],
        columns: ['balance', 'props', 'tags'],
      }),
    ).toEqual([{ rows: [{ balance: 15, props: ['map', [['k', 'v']]], tags: 'new' }] }]);
    expect(await query({ op: 'select', table: 'Account', where: [['name', '==', 'acc3']] })).toEqual([
      { rows: [] },
    ]);
  });

  it('commits nothing when a wait fails, and says which operation failed', async () => {
    const waitAt = (balance: number): Operation => ({
      op: 'wait',
      table: 'Account',
      where: [['name', '==', 'acc2']],
      columns: ['balance'],
      until: '==',
      rows: [{ balance }],
      timeout: 0,
    });
    await client.transact(DB, [
      waitAt(15),
      { op: 'update', table: 'Account', where: [['name', '==', 'acc2']], row: { balance: 16 } },
    ]);
    const failure = client.transact(DB, [
      { op: 'update', table: 'Account', where: [['name', '==', 'acc2']], row: { balance: 99 } },
      waitAt(15),
    ]);
    await expect(failure).rejects.toBeInstanceOf(OvsdbTransactionError);
    await expect(failure).rejects.toThrow(/operation 1 \(wait Account\): timed out/);
    expect(
      await query({ op: 'select', table: 'Account', where: [['name', '==', 'acc2']], columns: ['balance'] }),
    ).toEqual([{ rows: [{ balance: 16 }] }]);
  });

  it('reports a commit-time constraint violation (duplicate index key) after the last operation', async () => {
    const failure = client.transact(DB, [
      { op: 'insert', table: 'Account', row: { name: 'acc1', balance: 0 } },
    ]);
    await expect(failure).rejects.toThrow(/commit: constraint violation/);
    await expect(failure).rejects.toMatchObject({ operationIndex: 1 });
  });

  it('monitors a table: initial rows, then inserts, modifications and deletions by another client, until cancelled', async () => {
    const updates: TableUpdates[] = [];
    const monitor = await client.monitor(DB, { Account: { columns: ['name', 'balance'] } }, (update) =>
      updates.push(update),
    );
    // The current contents come first, as inserts.
    expect(updates).toHaveLength(1);
    const initial = updates.shift();
    const initialNames = Object.values(initial?.Account ?? {}).map((change) => change.new?.name);
    expect(initialNames.sort()).toEqual(['acc1', 'acc2']);

    await externalTransact({ op: 'insert', table: 'Account', row: { name: 'acc9', balance: 1 } });
    await eventually(() => updates.length === 1, 'the insert');
    const [insertedUuid, inserted] = Object.entries(updates[0]?.Account ?? {})[0] ?? [];
    if (insertedUuid === undefined) throw new Error('the update names no Account row');
    expect(inserted).toEqual({ new: { name: 'acc9', balance: 1 } });

    await externalTransact({
      op: 'update',
      table: 'Account',
      where: [['name', '==', 'acc9']],
      row: { balance: 2 },
    });
    await eventually(() => updates.length === 2, 'the modification');
    // A modification carries the changed columns' old values and the whole new row.
    expect(updates[1]?.Account?.[insertedUuid]).toEqual({
      old: { balance: 1 },
      new: { name: 'acc9', balance: 2 },
    });

    await externalTransact({ op: 'delete', table: 'Account', where: [['name', '==', 'acc9']] });
    await eventually(() => updates.length === 3, 'the deletion');
    expect(updates[2]?.Account?.[insertedUuid]).toEqual({ old: { name: 'acc9', balance: 2 } });

    await monitor.cancel();
    await externalTransact({ op: 'insert', table: 'Account', row: { name: 'acc10', balance: 1 } });
    // The server handles our requests in order: once an echo comes back, any
    // update it would still have sent for the cancelled monitor has arrived.
    await client.echo();
    expect(updates).toHaveLength(3);
  });

  it('works over TCP and answers the server’s inactivity probe (echo), staying connected', async () => {
    const link = ovs.rootLink;
    if (!link) throw new Error('startOvs({ rootLink: true }) returned no root link');
    // Log JSON-RPC traffic so the probe and our answer can be seen.
    await ovs.appctl('ovsdb-server', ['vlog/set', 'jsonrpc:file:dbg']);
    const tcpClient = await OvsdbClient.connect(`tcp:${link.nsAddress}:${OVSDB_TCP_PORT}`);
    try {
      expect(await tcpClient.listDbs()).toContain(DB);
      const log = join(ovs.runDir, 'ovsdb-server.log');
      // ovsdb-server probes an idle TCP client every 5 s and drops it if the echo goes unanswered.
      const answered = () =>
        readFile(log, 'utf8').then((text) =>
          /tcp:[^:]+:\d+: received reply, result=\[\], id="echo"/.test(text),
        );
      for (let attempt = 0; attempt < 300 && !(await answered()); attempt++) await sleep(100);
      expect(await answered(), 'ovsdb-server never logged our echo reply').toBe(true);
      expect(await tcpClient.listDbs()).toContain(DB);
    } finally {
      tcpClient.close();
    }
  });
});
