import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { repoRoot } from './repo.js';

describe('repoRoot', () => {
  it("is the folder of the project's own package.json, with the examples and CRDs beside it", () => {
    const root = repoRoot();
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('kubevirt-violin');
    expect(readFileSync(join(root, 'examples', 'snapshot.yaml'), 'utf8')).toContain('DistributedSnapshot');
  });
});
