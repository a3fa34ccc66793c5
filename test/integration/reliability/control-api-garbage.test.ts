// Bad input to the OFC's control API (what the transaction controller calls)
// gets a clear error and changes nothing: generated requests to every
// endpoint, with damaged arm requests (one field replaced by a hostile value),
// arbitrary JSON, text that is not JSON, and wrong methods and paths. Every
// answer is a 2xx or a 4xx/5xx other than 500 with { error: { code, message } };
// a 500 would mean a request reached code that did not expect it. Afterwards
// the OFC still answers its probes and holds no snapshot but those it accepted.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startOfc } from '../../../src/ofc/ofc.js';
import type { RunningOfc } from '../../../src/ofc/ofc.js';

const REQUESTS = 300;

const validArm = {
  snapshotId: 'fz',
  mode: 'Buffer',
  bufferTier: 'controller',
  bufferLimitBytes: 1 << 20,
  recordChannelState: false,
  vms: [
    { name: 'ns/a', mac: '52:54:00:00:00:01', bridge: 'br0', ofport: 1 },
    { name: 'ns/b', mac: '52:54:00:00:00:02' },
  ],
  bridges: [],
};

const hostile = fc.oneof(
  fc.constantFrom<unknown>(null, true, 0, -1, 1.5, 2 ** 53, '', 'x'.repeat(100_000), [], {}, [null], {
    a: 1,
  }),
  fc.constantFrom<unknown>('Buffer', 'datapath', 'ns/a', '52:54:00:00:00:01', 'ff:ff:ff:ff:ff:ff', 'BR0'),
  fc.jsonValue({ maxDepth: 2 }),
);
const armFields = Object.keys(validArm);
const damagedArm = fc
  .tuple(fc.constantFrom(...armFields, 'vms.0.mac', 'vms.0.ofport', 'vms.1.name', 'extra'), hostile)
  .map(([path, value]) => {
    const copy = structuredClone(validArm) as Record<string, unknown>;
    const keys = path.split('.');
    let node = copy as Record<string, unknown>;
    for (const key of keys.slice(0, -1)) node = node[key] as Record<string, unknown>;
    node[keys[keys.length - 1]!] = value;
    return copy;
  });

const body = fc.oneof(
  damagedArm.map((b) => JSON.stringify(b)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom('', '{', '{"vm":', 'null', '[]', '\u0000', 'not json', '{"flows": 5}', '{"reason": ""}'),
  fc
    .record({ flows: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }) })
    .map((b) => JSON.stringify(b)),
  fc
    .record({ channelState: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }) })
    .map((b) => JSON.stringify(b)),
);

const anyRequest = fc.record({
  method: fc.constantFrom('GET', 'POST', 'POST', 'POST', 'PUT', 'DELETE'),
  path: fc.oneof(
    fc.constantFrom('/v1/bridges', '/v1/snapshots', '/v1/restore', '/v1/nope', '/', '/v1/snapshots/'),
    fc
      .tuple(
        fc.constantFrom('fz', 'nosuch', '%2e%2e', '%E0%A4%A', 'a'.repeat(300)),
        fc.constantFrom('', '/advance', '/finish', '/abort', '/x'),
      )
      .map(([id, action]) => `/v1/snapshots/${id}${action}`),
  ),
  body,
});

/** Mostly arm requests with one damaged field (the validator's work), the rest anything anywhere. */
const request = fc.oneof(
  {
    weight: 2,
    arbitrary: damagedArm.map((b) => ({ method: 'POST', path: '/v1/snapshots', body: JSON.stringify(b) })),
  },
  { weight: 1, arbitrary: anyRequest },
);

describe('the OFC control API under generated bad requests', () => {
  let dir: string;
  let ofc: RunningOfc;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'violin-ctl-'));
    ofc = await startOfc({
      listen: `unix:${join(dir, 'ofc.sock')}`,
      control: '127.0.0.1:0',
      logger: pino({ level: process.env.VIOLIN_TEST_VERBOSE ? 'debug' : 'silent' }),
    });
  });

  afterAll(async () => {
    await ofc?.stop('test finished');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers every request with a result or a named error, never a 500, and keeps serving', async () => {
    const armed = new Set<string>();
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async ({ method, path, body: text }) => {
        const response = await fetch(`http://${ofc.controlAddress}${path}`, {
          method,
          ...(method === 'GET' ? {} : { body: text, headers: { 'content-type': 'application/json' } }),
        });
        const answer = await response.text();
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        const what = `${method} ${path} ${text.slice(0, 200)} -> ${response.status} ${answer.slice(0, 300)}`;
        expect(response.status, what).not.toBe(500);
        if (response.ok) {
          if (method === 'POST' && path === '/v1/snapshots')
            armed.add((JSON.parse(text) as { snapshotId: string }).snapshotId);
          return;
        }
        const error = (JSON.parse(answer) as { error?: { code?: unknown; message?: unknown } }).error;
        expect(typeof error?.code, what).toBe('string');
        expect(typeof error?.message === 'string' && error.message.length > 0, what).toBe(true);
      }),
      { numRuns: REQUESTS },
    );
    // Most of these are refusals by construction; a run that refused nothing tested nothing.
    const refused = [...statuses].filter(([status]) => status >= 400).reduce((n, [, count]) => n + count, 0);
    expect(refused).toBeGreaterThan(REQUESTS / 2);

    expect((await fetch(`http://${ofc.controlAddress}/healthz`)).status).toBe(200);
    expect(await (await fetch(`http://${ofc.controlAddress}/v1/bridges`)).json()).toEqual([]);
    for (const id of armed) {
      await fetch(`http://${ofc.controlAddress}/v1/snapshots/${encodeURIComponent(id)}/abort`, {
        method: 'POST',
        body: JSON.stringify({ reason: 'test cleanup' }),
      });
    }
  });
});
