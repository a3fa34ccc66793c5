// The client against a scripted peer on a real unix socket: the cases a
// well-behaved ovsdb-server never produces (broken framing, answers to
// questions never asked, oversized messages) and the server-initiated echo.
// The real-server behaviour is tested in test/integration/ovsdb/.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  OvsdbClient,
  OvsdbConnectionError,
  OvsdbRpcError,
  OvsdbTransactionError,
  parseRemote,
} from './client.js';
import { JsonMessageScanner } from './framing.js';

interface Request {
  method: string;
  params: unknown[];
  id: unknown;
}

/** A peer that hands each request the client sends to `onRequest`. */
class ScriptedServer {
  onRequest: (request: Request, socket: Socket) => void = () => undefined;
  /** Sees every message, replies included. */
  onMessage: (message: unknown) => void = () => undefined;
  socket?: Socket;
  /** Resolves when the client's connection has been accepted (connect() may return before that). */
  readonly connected: Promise<Socket>;
  private readonly server: Server;

  constructor(readonly path: string) {
    let accepted!: (socket: Socket) => void;
    this.connected = new Promise((resolve) => (accepted = resolve));
    this.server = createServer((socket) => {
      this.socket = socket;
      accepted(socket);
      const scanner = new JsonMessageScanner();
      socket.on('data', (chunk) => {
        for (const message of scanner.push(chunk)) {
          this.onMessage(message);
          if (typeof (message as Request).method === 'string') this.onRequest(message as Request, socket);
        }
      });
      socket.on('error', () => undefined);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(this.path, resolve));
  }

  async close(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('OvsdbClient against a scripted peer', () => {
  let dir: string;
  let server: ScriptedServer;
  let client: OvsdbClient;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-ovsdb-client-'));
    server = new ScriptedServer(join(dir, 'db.sock'));
    await server.listen();
    client = await OvsdbClient.connect(`unix:${server.path}`, { maxMessageBytes: 4096 });
    await server.connected;
  });

  afterEach(async () => {
    client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the server’s echo with the same params and id', async () => {
    const reply = new Promise<unknown>((resolve) => {
      server.onMessage = (message) => {
        if ((message as { id?: unknown }).id === 'echo-1') resolve(message);
      };
    });
    server.socket?.write('{"method":"echo","params":["ping",7],"id":"echo-1"}');
    expect(await reply).toEqual({ id: 'echo-1', result: ['ping', 7], error: null });
  });

  it('matches responses to requests by id, whatever order they come in', async () => {
    server.onRequest = (request, socket) => {
      if (request.id === 2) {
        socket.write(JSON.stringify({ id: 2, result: { name: 'B' }, error: null }));
        socket.write(JSON.stringify({ id: 1, result: { name: 'A' }, error: null }));
      }
    };
    const [a, b] = await Promise.all([client.getSchema('A'), client.getSchema('B')]);
    expect(a).toEqual({ name: 'A' });
    expect(b).toEqual({ name: 'B' });
  });

  it('reports a JSON-RPC error as OvsdbRpcError', async () => {
    server.onRequest = (request, socket) =>
      socket.write(JSON.stringify({ id: request.id, result: null, error: { error: 'unknown database' } }));
    await expect(client.getSchema('nope')).rejects.toThrow(OvsdbRpcError);
    await expect(client.getSchema('nope')).rejects.toThrow(/unknown database/);
  });

  it('names the failing operation of a transaction', async () => {
    server.onRequest = (request, socket) =>
      socket.write(
        JSON.stringify({
          id: request.id,
          result: [
            { uuid: ['uuid', '0d2ba9a1-2c3b-4a3f-9f1e-6c1c2b3a4d5e'] },
            { error: 'constraint violation', details: 'dup' },
          ],
          error: null,
        }),
      );
    const failure = client.transact('Open_vSwitch', [
      { op: 'insert', table: 'Bridge', row: { name: 'a' } },
      { op: 'insert', table: 'Bridge', row: { name: 'a' } },
    ]);
    await expect(failure).rejects.toThrow(OvsdbTransactionError);
    await expect(failure).rejects.toThrow(/operation 1 \(insert Bridge\): constraint violation: dup/);
  });

  it('delivers the initial contents, then an update sent in the same chunk as the monitor reply, in order', async () => {
    server.onRequest = (request, socket) => {
      const monitorId = request.params[1];
      socket.write(
        JSON.stringify({ id: request.id, result: { T: { u1: { new: { n: 1 } } } }, error: null }) +
          JSON.stringify({
            method: 'update',
            params: [monitorId, { T: { u1: { old: { n: 1 }, new: { n: 2 } } } }],
            id: null,
          }),
      );
    };
    const updates: unknown[] = [];
    await client.monitor('db', { T: {} }, (update) => updates.push(update));
    // The initial contents first, then the update: server order, never reversed.
    expect(updates).toEqual([
      { T: { u1: { new: { n: 1 } } } },
      { T: { u1: { old: { n: 1 }, new: { n: 2 } } } },
    ]);
  });

  it.each([
    ['broken framing', ']'],
    ['invalid JSON', '{"id":1,"result":[1,}'],
    ['a response to a request never sent', '{"id":99,"result":[],"error":null}'],
    ['a message that is neither request nor response', '{}'],
    ['an oversized message', `{"id":1,"result":"${'x'.repeat(5000)}"}`],
    [
      'a malformed value in an update',
      '{"method":"update","params":["m1",{"T":{"u":{"new":{"c":["uuid",5]}}}}],"id":null}',
    ],
  ])('closes the connection on %s, rejecting pending calls with the reason', async (_what, bytes) => {
    server.onRequest = (request, socket) => {
      if (request.method === 'monitor') {
        socket.write(JSON.stringify({ id: request.id, result: {}, error: null }));
        return;
      }
      socket.write(bytes);
    };
    // A monitor first, so that the malformed update has a subscriber to reach.
    await client.monitor('db', { T: {} }, () => undefined);
    const pending = client.listDbs();
    await expect(pending).rejects.toThrow(OvsdbConnectionError);
    await expect(pending).rejects.toThrow(/protocol violation/);
    const reason = await client.closed;
    expect(reason?.message).toMatch(/protocol violation/);
    await expect(client.echo()).rejects.toThrow(/protocol violation/);
  });

  it('rejects pending calls when the server goes away', async () => {
    server.onRequest = (_request, socket) => socket.destroy();
    await expect(client.listDbs()).rejects.toThrow(/closed by the server/);
  });

  it('closes the connection when a monitor subscriber throws, saying so', async () => {
    server.onRequest = (request, socket) => {
      socket.write(JSON.stringify({ id: request.id, result: {}, error: null }));
      socket.write(JSON.stringify({ method: 'update', params: [request.params[1], { T: {} }], id: null }));
    };
    let calls = 0;
    // The second delivery (the update) fails; the first (initial contents) succeeds.
    await client.monitor('db', { T: {} }, () => {
      if (++calls === 2) throw new Error('subscriber bug');
    });
    expect((await client.closed)?.message).toMatch(/monitor subscriber failed, closing: subscriber bug/);
  });

  it('fails the monitor call itself when the subscriber throws on the initial contents', async () => {
    server.onRequest = (request, socket) =>
      socket.write(JSON.stringify({ id: request.id, result: {}, error: null }));
    const monitoring = client.monitor('db', { T: {} }, () => {
      throw new Error('subscriber bug');
    });
    await expect(monitoring).rejects.toThrow(/monitor subscriber failed, closing: subscriber bug/);
    expect((await client.closed)?.message).toMatch(/subscriber bug/);
  });
});

describe('OvsdbClient fed arbitrary peer messages', () => {
  const message = fc.oneof(
    fc.record({
      id: fc.oneof(fc.nat(5), fc.string(), fc.constant(null)),
      result: fc.jsonValue(),
      error: fc.jsonValue(),
    }),
    fc.record({
      method: fc.constantFrom('update', 'echo', 'locked', 'nonsense'),
      params: fc.oneof(fc.jsonValue(), fc.tuple(fc.constantFrom('m1', 'm2'), fc.jsonValue())),
      id: fc.oneof(fc.constant(null), fc.nat(5), fc.string()),
    }),
    fc.jsonValue(),
  );
  const stream = fc.array(
    fc.oneof(
      message.map((value) => JSON.stringify(value) ?? 'null'),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 6 },
  );

  it('settles every call with a result or a connection/RPC error, and never throws out of the event loop', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'violin-ovsdb-fuzz-'));
    let runs = 0;
    try {
      await fc.assert(
        fc.asyncProperty(stream, async (writes) => {
          const server = new ScriptedServer(join(dir, `db${runs++}.sock`));
          await server.listen();
          try {
            const client = await OvsdbClient.connect(`unix:${server.path}`, { maxMessageBytes: 4096 });
            const socket = await server.connected;
            const monitoring = client.monitor('db', { T: {} }, () => undefined);
            const listing = client.listDbs();
            for (const text of writes) socket.write(text);
            // Whatever state the client is in, the server's going away settles every call.
            socket.end();
            for (const outcome of await Promise.allSettled([monitoring, listing, client.closed])) {
              if (outcome.status === 'rejected') {
                expect(
                  [OvsdbConnectionError, OvsdbRpcError].some((type) => outcome.reason instanceof type),
                ).toBe(true);
              }
            }
            client.close();
          } finally {
            await server.close();
          }
        }),
        { numRuns: 60 },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('OvsdbClient.connect', () => {
  it('refuses an ssl: remote without TLS material, before dialling', async () => {
    await expect(OvsdbClient.connect('ssl:127.0.0.1:6640')).rejects.toThrow(/needs TLS options/);
  });
});

describe('parseRemote', () => {
  it.each([
    ['unix:/run/openvswitch/db.sock', { kind: 'unix', path: '/run/openvswitch/db.sock' }],
    ['tcp:127.0.0.1:6640', { kind: 'tcp', host: '127.0.0.1', port: 6640 }],
    ['tcp:[::1]:6640', { kind: 'tcp', host: '::1', port: 6640 }],
    ['ssl:ovsdb.example:6640', { kind: 'ssl', host: 'ovsdb.example', port: 6640 }],
  ])('parses %s', (remote, expected) => {
    expect(parseRemote(remote)).toEqual(expected);
  });

  it.each(['unix:', 'tcp:host', 'tcp:host:0', 'tcp:host:70000', 'pssl:6640', '/run/db.sock'])(
    'refuses %s with a message naming the accepted forms',
    (remote) => {
      expect(() => parseRemote(remote)).toThrow(
        /expected unix:<path>, tcp:<host>:<port> or ssl:<host>:<port>/,
      );
    },
  );
});
