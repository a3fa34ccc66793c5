// Saved flows (the bundle's network state, in ovs-ofctl syntax) back into
// FLOW_MODs for restore, with the codec's ovs-ofctl parser. A flow that cannot
// be parsed refuses the restore with the flow and the parser's reason.
import { OfcError } from '../control/errors.js';
import type { SavedFlow } from '../control/types.js';
import { OpenFlowSyntaxError, parseActions, parseMatch } from '../openflow/index.js';
import type { FlowModMessage } from '../openflow/index.js';

export function savedFlowToFlowMod(flow: SavedFlow): FlowModMessage {
  const where = `flow on ${flow.bridge} (table ${flow.tableId}, priority ${flow.priority})`;
  let cookie: bigint;
  try {
    cookie = BigInt(flow.cookie);
  } catch {
    throw new OfcError('BadRequest', `cannot reinstall ${where}: cookie '${flow.cookie}' is not a number`);
  }
  try {
    return {
      type: 'flow-mod',
      xid: 0,
      command: 'add',
      cookie,
      cookieMask: 0n,
      tableId: flow.tableId,
      priority: flow.priority,
      idleTimeout: 0,
      hardTimeout: 0,
      flags: 0,
      match: parseMatch(flow.match),
      instructions: flow.actions === 'drop' ? [] : parseActions(flow.actions),
    };
  } catch (error) {
    if (error instanceof OpenFlowSyntaxError) {
      throw new OfcError('BadRequest', `cannot reinstall ${where}: ${error.message}`);
    }
    throw error;
  }
}
