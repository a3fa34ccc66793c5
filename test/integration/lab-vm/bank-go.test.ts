// The bank's own Go unit tests (ledger and wire format), run by `make test`
// with the Go toolchain that builds the guest image.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { requireTool } from '../../support/require-tool.js';

describe('bank workload (Go)', () => {
  it('passes go vet and go test', async () => {
    const go = existsSync('/usr/local/go/bin/go')
      ? '/usr/local/go/bin/go'
      : requireTool('go', 'Go ≥ 1.22 (go.dev/dl)');
    const options = {
      cwd: 'lab/guest/bank',
      env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false' },
    };
    await promisify(execFile)(go, ['vet', './...'], options);
    const { stdout } = await promisify(execFile)(go, ['test', '-count=1', './...'], options);
    expect(stdout).toMatch(/^ok\s/m);
  });
});
