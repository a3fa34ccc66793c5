// The OVSDB client as ovsdb-server (or whatever answers on its remote) can
// feed it: JSON-RPC messages back to back on the stream, cut into chunks
// anywhere, through the framing scanner, the JSON-RPC dispatcher and the RFC
// 7047 value decoders. The client is driven through its public API over an
// in-memory socket, so each input costs microseconds instead of a real
// connection; what is fuzzed is exactly the code a real socket's 'data' event runs.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

import fc from 'fast-check';

import {
  OvsdbClient,
  OvsdbConnectionError,
  OvsdbRpcError,
  OvsdbTransactionError,
} from '../../src/ovsdb/index.js';
import { chunked, mutated } from './mutation.js';
import { expectDocumentedError } from './target.js';
import type { FuzzTarget } from './target.js';

/** Just enough of net.Socket for OvsdbClient: events in, writes recorded, destroy noted. */
class MemorySocket extends EventEmitter {
  readonly written: string[] = [];
  destroyed = false;
  write(data: string): boolean {
    this.written.push(data);
    return true;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
}

const uuid = fc.uuid().map((u) => ['uuid', u]);
const atom = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  uuid,
  fc.constant(['named-uuid', 'x']),
);
/** Wire values: mostly well-formed atoms, sets and maps, sometimes anything JSON. */
const wireValue = fc.oneof(
  { weight: 3, arbitrary: atom },
  { weight: 2, arbitrary: fc.array(atom, { maxLength: 3 }).map((elements) => ['set', elements]) },
  { weight: 2, arbitrary: fc.array(fc.tuple(atom, atom), { maxLength: 3 }).map((pairs) => ['map', pairs]) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
const row = fc.dictionary(
  fc.constantFrom('name', 'ports', 'other_config', '_uuid', 'fail_mode', 'ofport'),
  wireValue,
  { maxKeys: 4 },
);
const tableUpdates = fc.dictionary(
  fc.constantFrom('Bridge', 'Port', 'Interface'),
  fc.dictionary(fc.uuid(), fc.record({ old: row, new: row }, { requiredKeys: [] }), { maxKeys: 3 }),
  { maxKeys: 2 },
);
const operationResults = fc.array(
  fc.oneof(
    fc.constant(null),
    fc.record({ uuid }),
    fc.record({ rows: fc.array(row, { maxLength: 2 }) }),
    fc.record({ count: fc.integer({ min: 0, max: 9 }) }),
    fc.record({ error: fc.string({ maxLength: 8 }), details: fc.string({ maxLength: 8 }) }),
    fc.jsonValue({ maxDepth: 2 }),
  ),
  { maxLength: 3 },
);

/** What a server can send: answers to our call (id 1), notifications, its own requests, and junk. */
const serverMessage = fc.oneof(
  fc.record({
    id: fc.constant(1),
    result: fc.oneof(tableUpdates, operationResults),
    error: fc.constant(null),
  }),
  fc.record({ id: fc.constant(1), result: fc.constant(null), error: fc.jsonValue({ maxDepth: 2 }) }),
  fc.record({
    method: fc.constant('update'),
    params: fc.tuple(fc.constantFrom('m1', 'm2'), tableUpdates),
    id: fc.constant(null),
  }),
  fc.record({
    method: fc.constantFrom('echo', 'locked', 'steal'),
    params: fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 2 }),
    id: fc.jsonValue({ maxDepth: 0 }),
  }),
  fc.record({ id: fc.integer({ min: 0, max: 3 }), result: fc.jsonValue({ maxDepth: 2 }) }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** A stream of messages, unharmed (so the decoders see well-framed but ill-typed values) or damaged bytes. */
const stream = mutated(
  fc
    .array(serverMessage, { minLength: 1, maxLength: 4 })
    .map((messages) => Buffer.from(messages.map((m) => JSON.stringify(m)).join(''))),
  0,
);

type CallOutcome = { state: 'pending' } | { state: 'resolved' } | { state: 'rejected'; error: unknown };

async function feed([chunks, asks, maxMessageBytes]: [
  Buffer[],
  'monitor' | 'transact',
  number | undefined,
]): Promise<boolean> {
  const socket = new MemorySocket();
  const client = new OvsdbClient(socket as unknown as Socket, { maxMessageBytes });
  const settled: { outcome: CallOutcome } = { outcome: { state: 'pending' } };
  const call =
    asks === 'monitor'
      ? client.monitor('Open_vSwitch', { Bridge: { columns: ['name'] } }, () => {})
      : client.transact('Open_vSwitch', [{ op: 'select', table: 'Bridge', where: [] }]);
  call.then(
    () => (settled.outcome = { state: 'resolved' }),
    (error: unknown) => (settled.outcome = { state: 'rejected', error }),
  );
  const input = `${asks} (max ${maxMessageBytes ?? 'default'} bytes) answered by ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`;
  for (const chunk of chunks) {
    try {
      socket.emit('data', chunk);
    } catch (error) {
      // In the operator this would be an uncaught exception in a socket handler: the whole process gone.
      throw new Error(`${input}: an exception escaped the client's data handler: ${(error as Error).stack}`, {
        cause: error,
      });
    }
  }
  await new Promise((resolve) => setImmediate(resolve));
  const { outcome } = settled;
  if (outcome.state === 'rejected') {
    expectDocumentedError(outcome.error, [OvsdbConnectionError, OvsdbRpcError, OvsdbTransactionError], input);
  }
  if (socket.destroyed) {
    const reason = await client.closed;
    expectDocumentedError(reason, [OvsdbConnectionError], `${input} (close reason)`);
    if (outcome.state === 'pending')
      throw new Error(`${input}: the connection closed but the call never settled`);
  }
  client.close();
  return true;
}

export const ovsdbTarget: FuzzTarget = {
  name: 'ovsdb',
  description:
    'OvsdbClient (JSON framing scanner, JSON-RPC dispatch, RFC 7047 value decoders) on random and damaged server streams',
  property: () =>
    fc.asyncProperty(
      fc.tuple(
        chunked(stream),
        fc.constantFrom('monitor' as const, 'transact' as const),
        // Sometimes a small bound on one message, so that the size limit is hit too.
        fc.option(fc.integer({ min: 16, max: 512 }), { nil: undefined }),
      ),
      feed,
    ),
};
