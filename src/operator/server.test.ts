import { describe, expect, it } from 'vitest';
import { HttpEndpoint, parseBindAddress, probesHandler } from './server.js';

describe('bind addresses', () => {
  it.each([
    [':8080', { host: undefined, port: 8080 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:8081', { host: '::1', port: 8081 }],
    ['0', undefined],
  ])('%s', (address, expected) => {
    expect(parseBindAddress(address)).toEqual(expected);
  });

  it.each(['8080', 'localhost', ':99999', 'a:b'])('refuses %s', (address) => {
    expect(() => parseBindAddress(address)).toThrow(`invalid bind address '${address}'`);
  });
});

describe('probes', () => {
  it('answers ok while every check passes and lists the failing ones otherwise', async () => {
    let syncFailure: string | undefined = 'informers not synced: pods';
    const endpoint = await HttpEndpoint.listen(
      '127.0.0.1:0',
      probesHandler({ healthz: { ping: () => undefined }, readyz: { sync: () => syncFailure } }),
    );
    try {
      const get = async (path: string): Promise<[number, string]> => {
        const response = await fetch(`http://${endpoint!.address()}${path}`);
        return [response.status, await response.text()];
      };
      expect(await get('/healthz')).toEqual([200, 'ok\n']);
      expect(await get('/readyz')).toEqual([
        500,
        '[-]sync failed: informers not synced: pods\nreadyz check failed\n',
      ]);
      syncFailure = undefined;
      expect(await get('/readyz')).toEqual([200, 'ok\n']);
      expect(await get('/readyz?verbose')).toEqual([200, '[+]sync ok\nreadyz check passed\n']);
      expect((await get('/metrics'))[0]).toBe(404);
    } finally {
      await endpoint?.close();
    }
  });

  it('reports a port already in use as a listen error', async () => {
    const first = await HttpEndpoint.listen('127.0.0.1:0', () => undefined);
    try {
      await expect(HttpEndpoint.listen(first!.address(), () => undefined)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await first?.close();
    }
  });
});
