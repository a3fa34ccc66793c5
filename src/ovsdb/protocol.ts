// The database operations and monitor messages of RFC 7047 (sections 4.1.5,
// 4.1.6 and 5.2), in their plain-JS form. The client encodes values on the way
// out and decodes them on the way in (values.ts), so callers never see the
// wire notation.
import { OvsdbValueError, Uuid, decodeValue, encodeValue } from './values.js';
import type { OvsdbValue, OvsdbValueInput } from './values.js';

/** A row as callers write it: column → value. */
export type RowInput = Record<string, OvsdbValueInput>;
/** A row as the server returns it, decoded. `_uuid` and `_version` are included when selected. */
export type Row = Record<string, OvsdbValue>;

export type ConditionFunction = '<' | '<=' | '==' | '!=' | '>=' | '>' | 'includes' | 'excludes';
export type Condition = [column: string, fn: ConditionFunction, value: OvsdbValueInput];
export type Mutator = '+=' | '-=' | '*=' | '/=' | '%=' | 'insert' | 'delete';
export type Mutation = [column: string, mutator: Mutator, value: OvsdbValueInput];

export type Operation =
  | { op: 'insert'; table: string; row: RowInput; uuidName?: string }
  | { op: 'select'; table: string; where: Condition[]; columns?: string[] }
  | { op: 'update'; table: string; where: Condition[]; row: RowInput }
  | { op: 'mutate'; table: string; where: Condition[]; mutations: Mutation[] }
  | { op: 'delete'; table: string; where: Condition[] }
  | {
      op: 'wait';
      table: string;
      where: Condition[];
      columns: string[];
      until: '==' | '!=';
      rows: RowInput[];
      /** Milliseconds the server may block the transaction waiting; 0 fails at once. */
      timeout?: number;
    }
  | { op: 'comment'; comment: string };

/** One operation's result, decoded. Which fields are set depends on the operation. */
export interface OperationResult {
  /** insert: the new row's UUID. */
  uuid?: string;
  /** select: the matching rows. */
  rows?: Row[];
  /** update, mutate, delete: how many rows matched. */
  count?: number;
}

export interface OperationError {
  error: string;
  details?: string;
}

/** One table's part of a monitor request (RFC 7047 4.1.5). */
export interface MonitorRequest {
  columns?: string[];
  select?: { initial?: boolean; insert?: boolean; delete?: boolean; modify?: boolean };
}

/** A row change: `old` absent for an insert, `new` absent for a delete. */
export interface RowUpdate {
  old?: Row;
  new?: Row;
}
/** table → row UUID → change. */
export type TableUpdates = Record<string, Record<string, RowUpdate>>;

function encodeRow(row: RowInput, where: string): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(row).map(([column, value]) => [column, encodeValue(value, `${where}.${column}`)]),
  );
}

function encodeConditions(where: Condition[]): unknown[] {
  return where.map(([column, fn, value]) => [column, fn, encodeValue(value, `condition on ${column}`)]);
}

/** Operation → the JSON object RFC 7047 5.2 specifies. */
export function encodeOperation(operation: Operation): Record<string, unknown> {
  switch (operation.op) {
    case 'insert':
      return {
        op: 'insert',
        table: operation.table,
        row: encodeRow(operation.row, operation.table),
        ...(operation.uuidName === undefined ? {} : { 'uuid-name': operation.uuidName }),
      };
    case 'select':
      return {
        op: 'select',
        table: operation.table,
        where: encodeConditions(operation.where),
        ...(operation.columns === undefined ? {} : { columns: operation.columns }),
      };
    case 'update':
      return {
        op: 'update',
        table: operation.table,
        where: encodeConditions(operation.where),
        row: encodeRow(operation.row, operation.table),
      };
    case 'mutate':
      return {
        op: 'mutate',
        table: operation.table,
        where: encodeConditions(operation.where),
        mutations: operation.mutations.map(([column, mutator, value]) => [
          column,
          mutator,
          encodeValue(value, `mutation of ${column}`),
        ]),
      };
    case 'delete':
      return { op: 'delete', table: operation.table, where: encodeConditions(operation.where) };
    case 'wait':
      return {
        op: 'wait',
        table: operation.table,
        where: encodeConditions(operation.where),
        columns: operation.columns,
        until: operation.until,
        rows: operation.rows.map((row) => encodeRow(row, operation.table)),
        ...(operation.timeout === undefined ? {} : { timeout: operation.timeout }),
      };
    case 'comment':
      return { op: 'comment', comment: operation.comment };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function decodeRow(wire: unknown, where: string): Row {
  if (!isObject(wire)) throw new OvsdbValueError(`${where}: a row must be a JSON object`);
  return Object.fromEntries(
    Object.entries(wire).map(([column, value]) => [column, decodeValue(value, `${where}.${column}`)]),
  );
}

/** Decodes one element of a transact result that is not an error. */
export function decodeOperationResult(wire: unknown, where: string): OperationResult {
  if (wire === null) return {};
  if (!isObject(wire)) throw new OvsdbValueError(`${where}: an operation result must be a JSON object`);
  const result: OperationResult = {};
  if ('uuid' in wire) {
    const uuid = decodeValue(wire.uuid, `${where}.uuid`);
    if (!(uuid instanceof Uuid)) throw new OvsdbValueError(`${where}.uuid must be ["uuid", …]`);
    result.uuid = uuid.value;
  }
  if ('rows' in wire) {
    if (!Array.isArray(wire.rows)) throw new OvsdbValueError(`${where}.rows must be an array`);
    result.rows = wire.rows.map((row, index) => decodeRow(row, `${where}.rows[${index}]`));
  }
  if ('count' in wire) {
    if (typeof wire.count !== 'number') throw new OvsdbValueError(`${where}.count must be a number`);
    result.count = wire.count;
  }
  return result;
}

/** Decodes the `<table-updates>` object of a monitor reply or `update` notification. */
export function decodeTableUpdates(wire: unknown): TableUpdates {
  if (!isObject(wire)) throw new OvsdbValueError('table-updates must be a JSON object');
  const updates: TableUpdates = {};
  for (const [table, rows] of Object.entries(wire)) {
    if (!isObject(rows)) throw new OvsdbValueError(`table-updates.${table} must be a JSON object`);
    const tableUpdates: Record<string, RowUpdate> = {};
    for (const [uuid, change] of Object.entries(rows)) {
      if (!isObject(change))
        throw new OvsdbValueError(`table-updates.${table}.${uuid} must be a JSON object`);
      const update: RowUpdate = {};
      if (change.old !== undefined) update.old = decodeRow(change.old, `${table}.${uuid}.old`);
      if (change.new !== undefined) update.new = decodeRow(change.new, `${table}.${uuid}.new`);
      tableUpdates[uuid] = update;
    }
    updates[table] = tableUpdates;
  }
  return updates;
}
