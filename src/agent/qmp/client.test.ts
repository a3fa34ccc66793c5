// The QMP client against a scripted QMP peer on a unix socket: the protocol
// paths real QEMU rarely takes (errors, garbage, floods) are exercised here;
// test/integration/agent/ runs it against real QEMU.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QmpClient, QmpCommandError, QmpConnectionError } from './client.js';

const GREETING = {
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: '' }, capabilities: [] },
};

let dir: string;
let server: Server;
let socketPath: string;
/** What the scripted peer does with each command line it receives. */
let onCommand: (command: { execute: string; id?: string; arguments?: unknown }, peer: Socket) => void;

function send(peer: Socket, message: unknown): void {
  peer.write(`${JSON.stringify(message)}\r\n`);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qmp-test-'));
  socketPath = join(dir, 'qmp.sock');
  onCommand = (command, peer) => send(peer, { return: {}, id: command.id });
  server = createServer((peer) => {
    send(peer, GREETING);
    let buffer = '';
    peer.on('data', (chunk) => {
      buffer += chunk.toString();
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        onCommand(JSON.parse(line) as { execute: string; id?: string }, peer);
      }
    });
    peer.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

afterEach(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

describe('QmpClient', () => {
  it('negotiates capabilities and matches replies to commands by id, in any order', async () => {
    const held: { id?: string; execute: string }[] = [];
    onCommand = (command, peer) => {
      if (command.execute === 'qmp_capabilities') return send(peer, { return: {}, id: command.id });
      held.push(command);
      if (held.length === 2) {
        // Answer the second command first.
        for (const c of [...held].reverse()) send(peer, { return: { answered: c.execute }, id: c.id });
      }
    };
    const qmp = await QmpClient.connect(socketPath);
    expect(qmp.greeting.version.qemu.major).toBe(7);
    const [a, b] = await Promise.all([qmp.execute('query-status'), qmp.execute('query-migrate')]);
    expect(a).toEqual({ answered: 'query-status' });
    expect(b).toEqual({ answered: 'query-migrate' });
    qmp.close();
  });

  it('maps a QMP error to QmpCommandError with its class and description', async () => {
    onCommand = (command, peer) =>
      command.execute === 'qmp_capabilities'
        ? send(peer, { return: {}, id: command.id })
        : send(peer, {
            error: { class: 'GenericError', desc: 'There is a migration in progress' },
            id: command.id,
          });
    const qmp = await QmpClient.connect(socketPath);
    const failure = qmp.execute('migrate', { uri: 'unix:/x' });
    await expect(failure).rejects.toBeInstanceOf(QmpCommandError);
    await expect(failure).rejects.toThrow(
      'QMP migrate failed: GenericError: There is a migration in progress',
    );
    // The connection survives a command error.
    await expect(qmp.execute('query-status')).rejects.toBeInstanceOf(QmpCommandError);
    qmp.close();
  });

  it('delivers events with QEMU timestamps and waits for a matching one', async () => {
    onCommand = (command, peer) => {
      send(peer, { return: {}, id: command.id });
      if (command.execute === 'cont') {
        send(peer, {
          event: 'MIGRATION',
          data: { status: 'active' },
          timestamp: { seconds: 100, microseconds: 1 },
        });
        send(peer, { event: 'RESUME', timestamp: { seconds: 1700000000, microseconds: 250000 } });
      }
    };
    const qmp = await QmpClient.connect(socketPath);
    const seen: string[] = [];
    qmp.onEvent((e) => seen.push(e.event));
    const resumed = qmp.waitForEvent('RESUME', 5000);
    await qmp.execute('cont');
    const event = await resumed;
    expect(event.timestampMs).toBe(1700000000250);
    expect(event.data).toEqual({});
    expect(seen).toEqual(['MIGRATION', 'RESUME']);
    qmp.close();
  });
});

describe('QmpClient with a peer that breaks the protocol or goes away', () => {
  it('closes the connection on a malformed line and fails pending commands and waiters with the reason', async () => {
    onCommand = (command, peer) =>
      command.execute === 'qmp_capabilities'
        ? send(peer, { return: {}, id: command.id })
        : peer.write('{not json\n');
    const qmp = await QmpClient.connect(socketPath);
    const waiting = qmp.waitForEvent('STOP', 60_000);
    const failure = qmp.execute('query-status');
    await expect(failure).rejects.toBeInstanceOf(QmpConnectionError);
    await expect(failure).rejects.toThrow(/malformed message/);
    await expect(waiting).rejects.toThrow(/malformed message/);
    await expect(qmp.execute('query-status')).rejects.toThrow(/malformed message/);
  });

  it('closes the connection when a line exceeds the buffer limit instead of growing without bound', async () => {
    onCommand = (command, peer) => {
      if (command.execute === 'qmp_capabilities') return send(peer, { return: {}, id: command.id });
      peer.write('x'.repeat(2 * 1024 * 1024));
    };
    const qmp = await QmpClient.connect(socketPath);
    await expect(qmp.execute('query-status')).rejects.toThrow(/exceeded 1048576 bytes/);
  });

  it('refuses a reply to a command it never sent', async () => {
    onCommand = (command, peer) =>
      command.execute === 'qmp_capabilities'
        ? send(peer, { return: {}, id: command.id })
        : send(peer, { return: {}, id: 'someone-else' });
    const qmp = await QmpClient.connect(socketPath);
    await expect(qmp.execute('query-status')).rejects.toThrow(/reply to no command I sent/);
  });

  it('fails clearly when QEMU closes the socket or is not there', async () => {
    onCommand = (_command, peer) => peer.destroy();
    await expect(QmpClient.connect(socketPath)).rejects.toThrow(/connection closed by QEMU/);
    await expect(QmpClient.connect(join(dir, 'missing.sock'))).rejects.toThrow(/ENOENT/);
  });

  it('times out a wait for an event that never comes', async () => {
    const qmp = await QmpClient.connect(socketPath);
    await expect(qmp.waitForEvent('RESUME', 50)).rejects.toThrow(/no RESUME event within 50 ms/);
    qmp.close();
  });
});
