// A typed view of the Open_vSwitch database (ovs-vswitchd.conf.db(5)) for what
// the operator and the OpenFlow controller need: bridges with their controller
// targets and fail mode, and their ports (ports.ts).
//
// Every write bumps Open_vSwitch.next_cfg in its transaction and, by default,
// waits until ovs-vswitchd reports the same cur_cfg, as ovs-vsctl does: when a
// call returns, the switch has applied it (a new port has its ofport, a new
// controller target is being dialled).
import type { OvsdbClient } from './client.js';
import { OvsdbTransactionError } from './client.js';
import type { Condition, Operation, RowInput, TableUpdates } from './protocol.js';
import { NamedUuid, Uuid, asOptional, asStringMap, asUuids } from './values.js';
import type { FailMode, ReleaseOutcome, SecuredRow } from './bridge-holders.js';
import { failModeOf, releasedFor, securedByKey, securedFor } from './bridge-holders.js';
import type { PortInfo, PortTables, VmAttachment } from './ports.js';
import { attachmentsOf, joinPorts, PORT_COLUMNS } from './ports.js';

// The reconcilers name a workload's attachment by this module.
export type { VmAttachment } from './ports.js';

export const OPEN_VSWITCH_DB = 'Open_vSwitch';

/** Optimistic transactions retry when another client changed the row between our read and our write. */
const MAX_CONFLICT_RETRIES = 20;

export interface BridgeSettings {
  /** `netdev` for the userspace datapath; OVS's default (`system`) when absent. */
  datapathType?: string;
  failMode?: FailMode;
  /** Controller targets (`tcp:10.0.0.1:6653`, `unix:/run/ofc.sock`); replaces the bridge's set. */
  controllers?: string[];
  /** Allowed OpenFlow versions, e.g. ['OpenFlow13']. */
  protocols?: string[];
  /** Merged into the bridge's other_config (e.g. `disable-in-band`, `datapath-id`). */
  otherConfig?: Record<string, string>;
}

export interface OpenVswitchOptions {
  /** Wait for ovs-vswitchd to apply each write; off for a bare ovsdb-server. Default true. */
  waitForSwitch?: boolean;
  /** How long a write may wait for ovs-vswitchd. Default 30 s. */
  switchTimeoutMs?: number;
}

function byName(name: string): Condition[] {
  return [['name', '==', name]];
}

export class OpenVswitchDb {
  private readonly waitForSwitch: boolean;
  private readonly switchTimeoutMs: number;

  constructor(
    readonly client: OvsdbClient,
    options: OpenVswitchOptions = {},
  ) {
    this.waitForSwitch = options.waitForSwitch ?? true;
    this.switchTimeoutMs = options.switchTimeoutMs ?? 30_000;
  }

  /**
   * Creates the bridge (with its internal port, as ovs-vsctl add-br does) or
   * brings an existing one to the given settings. Fields left out are not
   * touched on an existing bridge.
   */
  async ensureBridge(name: string, settings: BridgeSettings = {}): Promise<void> {
    const [existing] = await this.client.transact(OPEN_VSWITCH_DB, [
      { op: 'select', table: 'Bridge', where: byName(name), columns: ['name'] },
    ]);
    const controllerInserts = this.controllerInserts(settings.controllers);
    const row: RowInput = {
      ...(settings.datapathType === undefined ? {} : { datapath_type: settings.datapathType }),
      ...(settings.failMode === undefined ? {} : { fail_mode: settings.failMode }),
      ...(settings.protocols === undefined ? {} : { protocols: settings.protocols }),
      ...(controllerInserts.references === undefined ? {} : { controller: controllerInserts.references }),
    };
    const operations: Operation[] = [...controllerInserts.operations];
    if (existing?.rows?.length) {
      operations.push(this.bridgeWait(name, 'present'));
      if (Object.keys(row).length > 0)
        operations.push({ op: 'update', table: 'Bridge', where: byName(name), row });
      if (settings.otherConfig)
        operations.push(...this.mergeMap('Bridge', name, 'other_config', settings.otherConfig));
    } else {
      operations.push(
        // Another client may have created it since our select: fail rather than create a duplicate.
        this.bridgeWait(name, 'absent'),
        { op: 'insert', table: 'Interface', row: { name, type: 'internal' }, uuidName: 'iface' },
        {
          op: 'insert',
          table: 'Port',
          row: { name, interfaces: [new NamedUuid('iface')] },
          uuidName: 'port',
        },
        {
          op: 'insert',
          table: 'Bridge',
          row: { name, ports: [new NamedUuid('port')], other_config: settings.otherConfig ?? {}, ...row },
          uuidName: 'bridge',
        },
        {
          op: 'mutate',
          table: 'Open_vSwitch',
          where: [],
          mutations: [['bridges', 'insert', [new NamedUuid('bridge')]]],
        },
      );
    }
    await this.write(operations, `ensure bridge ${name}`);
  }

  /** Removes the bridge and its ports (Port and Interface rows go with it: they are not root tables). */
  async deleteBridge(name: string): Promise<void> {
    const [found] = await this.client.transact(OPEN_VSWITCH_DB, [
      { op: 'select', table: 'Bridge', where: byName(name), columns: ['_uuid'] },
    ]);
    const [uuid] = asUuids(found?.rows?.[0]?._uuid);
    if (uuid === undefined) throw new Error(`no bridge named ${name}`);
    await this.write(
      [
        {
          op: 'mutate',
          table: 'Open_vSwitch',
          where: [],
          mutations: [['bridges', 'delete', [new Uuid(uuid)]]],
        },
      ],
      `delete bridge ${name}`,
    );
  }

  /** Replaces the bridge's controller targets; an empty list disconnects it from every controller. */
  async setControllers(bridge: string, targets: string[]): Promise<void> {
    const inserts = this.controllerInserts(targets);
    await this.write(
      [
        ...inserts.operations,
        this.bridgeWait(bridge, 'present'),
        {
          op: 'update',
          table: 'Bridge',
          where: byName(bridge),
          row: { controller: inserts.references ?? [] },
        },
      ],
      `set controllers of ${bridge}`,
    );
  }

  async getControllers(bridge: string): Promise<string[]> {
    const results = await this.transact(
      [
        this.bridgeWait(bridge, 'present'),
        { op: 'select', table: 'Bridge', where: byName(bridge), columns: ['controller'] },
        { op: 'select', table: 'Controller', where: [], columns: ['_uuid', 'target'] },
      ],
      `read controllers of ${bridge}`,
    );
    const wanted = new Set(asUuids(results[1]?.rows?.[0]?.controller));
    return (results[2]?.rows ?? [])
      .filter((row) => wanted.has(String(row._uuid)))
      .map((row) => String(row.target))
      .sort();
  }

  /** Sets the bridge's fail mode; undefined clears the column (OVS's default, which behaves as standalone). */
  async setFailMode(bridge: string, mode: FailMode | undefined): Promise<void> {
    await this.write(
      [
        this.bridgeWait(bridge, 'present'),
        { op: 'update', table: 'Bridge', where: byName(bridge), row: { fail_mode: mode ?? [] } },
      ],
      `set fail mode of ${bridge}`,
    );
  }

  /** The bridge's fail mode, or undefined when unset (ovs-vswitchd then behaves as standalone). */
  async getFailMode(bridge: string): Promise<FailMode | undefined> {
    const results = await this.transact(
      [
        this.bridgeWait(bridge, 'present'),
        { op: 'select', table: 'Bridge', where: byName(bridge), columns: ['fail_mode'] },
      ],
      `read fail mode of ${bridge}`,
    );
    return failModeOf(bridge, results[1]?.rows?.[0]?.fail_mode);
  }

  /**
   * Puts the bridge in `secure` fail mode for `holder` (a snapshot's UID), so
   * that a lost controller leaves its flows in place instead of failing open.
   * The first holder records the mode it found; later holders only add their
   * key. Idempotent: securing again for the same holder changes nothing.
   */
  async secureBridge(bridge: string, holder: string): Promise<void> {
    const what = `secure ${bridge} for ${holder}`;
    const found = await this.updateSecuredRow(bridge, what, (row) => securedFor(row, holder));
    if (!found) throw new Error(`cannot ${what}: bridge does not exist`);
  }

  /**
   * Lets go of the bridge for `holder`. While other holders remain it stays
   * secure; the last one restores the recorded mode (clearing the column when
   * it was unset). A bridge this holder does not hold, or that no longer
   * exists, is left alone: a retried release is harmless.
   */
  async releaseBridge(bridge: string, holder: string): Promise<ReleaseOutcome> {
    let outcome: ReleaseOutcome = { kind: 'not-held' };
    await this.updateSecuredRow(bridge, `release ${bridge} for ${holder}`, (row) => {
      const released = releasedFor(row, holder);
      outcome = released.outcome;
      return released.next;
    });
    return outcome;
  }

  /** Bridges that `holder` has secured (and not released), sorted by name. */
  async bridgesSecuredBy(holder: string): Promise<string[]> {
    const [result] = await this.client.transact(OPEN_VSWITCH_DB, [
      { op: 'select', table: 'Bridge', where: [], columns: ['name', 'external_ids'] },
    ]);
    const key = securedByKey(holder);
    return (result?.rows ?? [])
      .filter((row) => asStringMap(row.external_ids)[key] !== undefined)
      .map((row) => String(row.name))
      .sort();
  }

  async listBridges(): Promise<string[]> {
    const [result] = await this.client.transact(OPEN_VSWITCH_DB, [
      { op: 'select', table: 'Bridge', where: [], columns: ['name'] },
    ]);
    return (result?.rows ?? []).map((row) => String(row.name)).sort();
  }

  /** Ports of one bridge, or of every bridge when none is named. */
  async listPorts(bridge?: string): Promise<PortInfo[]> {
    const results = await this.client.transact(
      OPEN_VSWITCH_DB,
      (['Bridge', 'Port', 'Interface'] as const).map((table) => ({
        op: 'select' as const,
        table,
        where: table === 'Bridge' && bridge !== undefined ? byName(bridge) : [],
        columns: ['_uuid', ...PORT_COLUMNS[table]],
      })),
    );
    const rowsOf = (index: number) =>
      new Map((results[index]?.rows ?? []).map((row) => [String(row._uuid), row] as const));
    const tables: PortTables = { Bridge: rowsOf(0), Port: rowsOf(1), Interface: rowsOf(2) };
    if (bridge !== undefined && tables.Bridge.size === 0) throw new Error(`no bridge named ${bridge}`);
    return joinPorts(tables);
  }

  /** Every port that says which VM (lab) or pod interface (ovs-cni) it carries. */
  async findVmAttachments(): Promise<VmAttachment[]> {
    return attachmentsOf(await this.listPorts());
  }

  /**
   * Calls `onPorts` with every bridge's ports now, and again after every
   * change to a bridge's port set, a port or an interface (a port added or
   * removed, an ofport assigned, external_ids edited).
   */
  async watchPorts(onPorts: (ports: PortInfo[]) => void): Promise<{ cancel(): Promise<void> }> {
    const tables: PortTables = { Bridge: new Map(), Port: new Map(), Interface: new Map() };
    const monitor = await this.client.monitor(
      OPEN_VSWITCH_DB,
      Object.fromEntries(
        (['Bridge', 'Port', 'Interface'] as const).map((table) => [
          table,
          { columns: [...PORT_COLUMNS[table]] },
        ]),
      ),
      (updates) => {
        for (const table of ['Bridge', 'Port', 'Interface'] as const) {
          for (const [uuid, change] of Object.entries(updates[table] ?? {})) {
            // `new` is the whole monitored row (only `old` is limited to the
            // changed columns), so replacing the row is enough.
            if (change.new) tables[table].set(uuid, change.new);
            else tables[table].delete(uuid);
          }
        }
        onPorts(joinPorts(tables));
      },
    );
    return { cancel: () => monitor.cancel() };
  }

  /**
   * Reads the bridge's fail mode and external_ids, lets `change` compute the
   * new values (undefined: nothing to do), and writes them in one transaction
   * guarded by a `wait` on the values read: if another client (another
   * snapshot's reconcile, ovs-vsctl) changed them meanwhile, nothing is
   * committed and the read is done again. Resolves false when the bridge does not exist.
   */
  private async updateSecuredRow(
    bridge: string,
    what: string,
    change: (row: SecuredRow) => SecuredRow | undefined,
  ): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_CONFLICT_RETRIES; attempt++) {
      const [result] = await this.client.transact(OPEN_VSWITCH_DB, [
        { op: 'select', table: 'Bridge', where: byName(bridge), columns: ['fail_mode', 'external_ids'] },
      ]);
      const found = result?.rows?.[0];
      if (!found) return false;
      const read: SecuredRow = {
        failMode: failModeOf(bridge, found.fail_mode),
        externalIds: asStringMap(found.external_ids),
      };
      const next = change(read);
      if (!next) return true;
      const asColumns = (row: SecuredRow): RowInput => ({
        fail_mode: row.failMode ?? [],
        external_ids: row.externalIds,
      });
      try {
        await this.write(
          [
            {
              op: 'wait',
              table: 'Bridge',
              where: byName(bridge),
              columns: ['fail_mode', 'external_ids'],
              until: '==',
              rows: [asColumns(read)],
              timeout: 0,
            },
            { op: 'update', table: 'Bridge', where: byName(bridge), row: asColumns(next) },
          ],
          what,
        );
        return true;
      } catch (error) {
        const conflict =
          error instanceof OvsdbTransactionError && error.error === 'timed out' && error.operationIndex === 0;
        if (!conflict) throw error;
      }
    }
    throw new Error(`cannot ${what}: the bridge kept changing under ${MAX_CONFLICT_RETRIES} attempts`);
  }

  /** Controller rows to insert and the named-uuid references to them. */
  private controllerInserts(targets: string[] | undefined): {
    operations: Operation[];
    references?: NamedUuid[];
  } {
    if (targets === undefined) return { operations: [] };
    const operations: Operation[] = targets.map((target, index) => ({
      op: 'insert',
      table: 'Controller',
      row: { target },
      uuidName: `controller${index}`,
    }));
    return { operations, references: targets.map((_target, index) => new NamedUuid(`controller${index}`)) };
  }

  /**
   * A wait that fails the transaction at once, committing nothing, unless the
   * bridge is present (or absent); `transact` turns its failure into a clear error.
   */
  private bridgeWait(name: string, state: 'present' | 'absent'): Operation {
    return {
      op: 'wait',
      table: 'Bridge',
      where: byName(name),
      columns: ['name'],
      until: '==',
      rows: state === 'present' ? [{ name }] : [],
      timeout: 0,
    };
  }

  /** Sets keys in a map column without dropping the others (delete-then-insert: insert keeps old values). */
  private mergeMap(
    table: string,
    name: string,
    column: string,
    entries: Record<string, string>,
  ): Operation[] {
    return [
      { op: 'mutate', table, where: byName(name), mutations: [[column, 'delete', Object.keys(entries)]] },
      { op: 'mutate', table, where: byName(name), mutations: [[column, 'insert', entries]] },
    ];
  }

  /** Runs a transaction; a failed bridge wait becomes "bridge does not exist" / "exists already". */
  private async transact(operations: Operation[], what: string) {
    try {
      return await this.client.transact(OPEN_VSWITCH_DB, operations);
    } catch (error) {
      if (error instanceof OvsdbTransactionError && error.error === 'timed out') {
        const failed = operations[error.operationIndex];
        if (failed?.op === 'wait' && failed.table === 'Bridge' && failed.columns.join() === 'name') {
          const state = failed.rows.length === 0 ? 'exists already' : 'does not exist';
          throw new Error(`cannot ${what}: bridge ${state}`, { cause: error });
        }
      }
      throw error;
    }
  }

  /** Commits a write with next_cfg bumped, then (by default) waits until ovs-vswitchd has caught up with it. */
  private async write(operations: Operation[], what: string): Promise<void> {
    const results = await this.transact(
      [
        ...operations,
        { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
        { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] },
        { op: 'comment', comment: `kubevirt-violin: ${what}` },
      ],
      what,
    );
    const nextCfg = asOptional(results[operations.length + 1]?.rows?.[0]?.next_cfg);
    if (typeof nextCfg !== 'number')
      throw new Error(`cannot ${what}: Open_vSwitch has no row (database not initialised)`);
    if (this.waitForSwitch) await this.waitForCurCfg(nextCfg, what);
  }

  private async waitForCurCfg(target: number, what: string): Promise<void> {
    let resolveApplied!: () => void;
    const applied = new Promise<void>((resolve) => (resolveApplied = resolve));
    const check = (updates: TableUpdates) => {
      for (const change of Object.values(updates.Open_vSwitch ?? {})) {
        const curCfg = asOptional(change.new?.cur_cfg);
        if (typeof curCfg === 'number' && curCfg >= target) resolveApplied();
      }
    };
    const monitor = await this.client.monitor(
      OPEN_VSWITCH_DB,
      { Open_vSwitch: { columns: ['cur_cfg'] } },
      check,
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`${what}: ovs-vswitchd did not apply the change within ${this.switchTimeoutMs} ms`),
          ),
        this.switchTimeoutMs,
      );
    });
    try {
      const closed = this.client.closed.then((reason) =>
        Promise.reject(reason ?? new Error(`${what}: the OVSDB connection was closed`)),
      );
      await Promise.race([applied, timedOut, closed]);
    } finally {
      clearTimeout(timer);
      await monitor.cancel().catch(() => undefined);
    }
  }
}
