// The import rules of `make lint` (.dependency-cruiser.mjs) fail on a fixture
// tree that breaks each of them, and pass on its good counterpart: a rule that
// could never fail would let src/ import the lab again unnoticed.
import { join } from 'node:path';
import { cruise, type IReporterOutput, type IViolation } from 'dependency-cruiser';
import extractDepcruiseConfig from 'dependency-cruiser/config-utl/extract-depcruise-config';
import { describe, expect, it } from 'vitest';

import { repoRoot } from '../../../src/devenv/repo.js';

const fixtures = join(repoRoot(), 'test', 'fixtures', 'import-rules');

async function violations(tree: 'bad' | 'good'): Promise<string[]> {
  const config = await extractDepcruiseConfig(join(repoRoot(), '.dependency-cruiser.mjs'));
  const result: IReporterOutput = await cruise(['src', 'lab', 'test'], {
    baseDir: join(fixtures, tree),
    validate: true,
    ruleSet: { forbidden: config.forbidden ?? [] },
    ...config.options,
    // The repository's own run leaves the fixtures out; here they are the subject.
    exclude: { path: '^node_modules/' },
  });
  if (typeof result.output === 'string') throw new Error('expected a cruise result, got a report');
  return result.output.summary.violations.map(describeViolation).sort();
}

function describeViolation(v: IViolation): string {
  const cycle = v.cycle?.map((step) => step.name).join(' → ');
  return `${v.rule.name}: ${v.from} → ${cycle ?? v.to}`;
}

describe('import rules', () => {
  it('report a type-only cycle, src/ importing the lab, the lab importing the tests, and an unresolvable import', async () => {
    expect(await violations('bad')).toEqual([
      'no-cycle: src/chaos/report.ts → src/chaos/runner.ts → src/chaos/report.ts',
      'resolvable: src/chaos/plan.ts → ./nowhere.js',
      'src-alone: src/cli/main.ts → lab/cluster.ts',
      'tools-without-tests: lab/cluster.ts → test/support/require-tool.ts',
    ]);
  });

  it('pass on the same shapes done right: shared types in their own file, the lab and the tests using src/', async () => {
    expect(await violations('good')).toEqual([]);
  });
});
