// `violin dev apiserver` as a person uses it: it prints a kubeconfig that
// works, and Ctrl-C (SIGINT) stops everything and removes its temp dir.
import { ApiextensionsV1Api, KubeConfig } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../../src/devenv/repo.js';
import { requireTool } from '../../support/require-tool.js';

describe('violin dev apiserver', () => {
  it('serves the CRDs through the printed kubeconfig until SIGINT, then cleans up', async () => {
    requireTool('openssl', 'Debian package openssl: signs the API server certificate');
    const cli = spawn(
      process.execPath,
      ['--import', 'tsx', join(repoRoot(), 'src', 'cli', 'main.ts'), 'dev', 'apiserver'],
      {
        cwd: repoRoot(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((resolve) => cli.on('exit', resolve));
    let stdout = '';
    let stderr = '';
    cli.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const kubeconfigPath = await new Promise<string>((resolve, reject) => {
        cli.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /^export KUBECONFIG=(\S+)$/m.exec(stdout);
          if (match?.[1]) resolve(match[1]);
        });
        void exited.then((code) =>
          reject(new Error(`violin dev apiserver exited (${code}) before printing a kubeconfig:\n${stderr}`)),
        );
      });

      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      const crds = await kc.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition();
      expect(crds.items.map((c) => c.metadata?.name)).toEqual(
        expect.arrayContaining([
          'distributedsnapshots.violin.dev',
          'snapshotrestores.violin.dev',
          'snapshotschedules.violin.dev',
        ]),
      );

      cli.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(stderr).toContain('SIGINT: stopping');
      expect(existsSync(dirname(kubeconfigPath))).toBe(false);
    } finally {
      // Only if an assertion failed before SIGINT: do not leave the CLI (and its control plane) behind.
      if (cli.exitCode === null) {
        cli.kill('SIGINT');
        await exited;
      }
    }
  });
});
