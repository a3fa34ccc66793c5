// VirtApiPauser against a local HTTP server standing in for virt-api's
// aggregated subresources endpoint: the request must be exactly what virt-api
// serves (PUT, subresources.kubevirt.io/v1 path), and an error must say why.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';

import { VirtApiPauser } from './client.js';

describe('VirtApiPauser', () => {
  let server: Server | undefined;

  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  /** Answers each request with the next of `statuses`, the last one from then on. */
  async function virtApi(
    ...statuses: number[]
  ): Promise<{ pauser: VirtApiPauser; requests: IncomingMessage[] }> {
    const requests: IncomingMessage[] = [];
    server = createServer((req, res) => {
      requests.push(req);
      const status = statuses[Math.min(requests.length, statuses.length) - 1] ?? 200;
      req.resume();
      req.on('end', () => {
        res.statusCode = status;
        res.end(
          status === 200 ? '' : status === 503 ? 'error trying to reach service' : 'VMI is not running',
        );
      });
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return { pauser: new VirtApiPauser(kc), requests };
  }

  it('PUTs the pause and unpause subresources of the VMI', async () => {
    const { pauser, requests } = await virtApi(200);
    await pauser.pause('shop', 'web-0');
    await pauser.unpause('shop', 'web-0');
    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'PUT /apis/subresources.kubevirt.io/v1/namespaces/shop/virtualmachineinstances/web-0/pause',
      'PUT /apis/subresources.kubevirt.io/v1/namespaces/shop/virtualmachineinstances/web-0/unpause',
    ]);
    expect(requests[0]?.headers.authorization).toBe('Bearer t');
  });

  it("reports virt-api's refusal with its status and message", async () => {
    const { pauser } = await virtApi(409);
    await expect(pauser.pause('shop', 'web-0')).rejects.toThrow(
      'pause shop/web-0: HTTP 409: VMI is not running',
    );
    // The status is kept, so a caller can tell "already paused" (409) from an outage.
    await expect(pauser.unpause('shop', 'web-0')).rejects.toMatchObject({ status: 409 });
  });

  it('sends again when the aggregator could not reach virt-api, a few times only', async () => {
    const flaky = await virtApi(503, 200);
    await flaky.pauser.pause('shop', 'web-0');
    expect(flaky.requests).toHaveLength(2);
    await new Promise<void>((resolve) => server?.close(() => resolve()));

    const down = await virtApi(503);
    await expect(down.pauser.pause('shop', 'web-0')).rejects.toMatchObject({ status: 503 });
    expect(down.requests).toHaveLength(3);
  });

  it('does not send a refused request again', async () => {
    const { pauser, requests } = await virtApi(409);
    await expect(pauser.pause('shop', 'web-0')).rejects.toMatchObject({ status: 409 });
    expect(requests).toHaveLength(1);
  });
});
