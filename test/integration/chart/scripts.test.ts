// The dev-environment scripts cannot run here (kind needs a Docker engine), so
// the least that must hold is that shellcheck, following sourced files, finds
// nothing in any of them.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../../src/devenv/repo.js';
import { requireTool } from '../../support/require-tool.js';

const scripts = readdirSync(join(repoRoot(), 'hack'))
  .filter((f) => f.endsWith('.sh'))
  .sort();

describe('hack/ scripts', () => {
  it('include the kind environment', () => {
    expect(scripts).toEqual(expect.arrayContaining(['kind-up.sh', 'kind-down.sh']));
  });

  it.each(scripts)('%s passes shellcheck', (script) => {
    const shellcheck = requireTool('shellcheck', 'Debian package shellcheck');
    const result = spawnSync(shellcheck, ['-x', join('hack', script)], { cwd: repoRoot(), encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
