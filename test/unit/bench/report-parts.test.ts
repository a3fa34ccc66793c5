// The benchmark report's building blocks: percentiles, the SVG writer and the
// markdown tables. (The benchmarks themselves have smoke tests in
// test/integration/bench, against real parts.)
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as prettier from 'prettier';
import { describe, expect, it } from 'vitest';

import { readEarlierFigures, renderMarkdown, table, writeReport } from '../../../bench/lib/report.js';
import { percentile, summarize } from '../../../bench/lib/stats.js';
import { barPlotSvg, linePlotSvg } from '../../../bench/lib/svg.js';

describe('stats', () => {
  it('uses nearest-rank percentiles, so every percentile is a measured sample', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile(sorted, 1)).toBe(100);
    expect(percentile([7], 0.99)).toBe(7);
    expect(summarize([3, 1, 2])).toMatchObject({ count: 3, min: 1, p50: 2, max: 3, mean: 2 });
  });

  it('refuses empty sample sets and percentiles outside [0, 1]', () => {
    expect(() => summarize([])).toThrow(/no samples/);
    expect(() => percentile([1], 1.5)).toThrow(/outside/);
  });
});

describe('svg', () => {
  it('draws one polyline per series with every point inside the plot area', () => {
    const svg = linePlotSvg({
      title: 'A & B',
      xLabel: 's',
      yLabel: 'bytes',
      series: [
        {
          name: 'drop',
          points: [
            [0, 0],
            [1, 10],
            [2, 30],
          ],
        },
        {
          name: 'buffer',
          points: [
            [0, 0],
            [2, 5],
          ],
        },
      ],
    });
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('A &#38; B');
    const coords = [...svg.matchAll(/points="([^"]+)"/g)].flatMap((m) =>
      m[1]!.split(' ').map((p) => p.split(',').map(Number)),
    );
    for (const [x, y] of coords) {
      expect(x).toBeGreaterThanOrEqual(70);
      expect(x).toBeLessThanOrEqual(480);
      expect(y).toBeGreaterThanOrEqual(36);
      expect(y).toBeLessThanOrEqual(310);
    }
  });

  it('draws one bar per value, on a log scale when asked, and refuses ragged groups', () => {
    const svg = barPlotSvg({
      title: 't',
      yLabel: 'ms',
      logScale: true,
      seriesNames: ['a', 'b'],
      groups: [
        { label: 'x', values: [0.5, 28] },
        { label: 'y', values: [2, 300] },
      ],
    });
    // One background rect, four bars, two legend swatches.
    expect(svg.match(/<rect /g)).toHaveLength(7);
    expect(() =>
      barPlotSvg({ title: 't', yLabel: '', seriesNames: ['a', 'b'], groups: [{ label: 'x', values: [1] }] }),
    ).toThrow(/has 1 values/);
  });
});

describe('report', () => {
  it('escapes pipes in table cells and marks unmet goals', () => {
    expect(table({ columns: ['a', 'b'], rows: [['x|y', 1]] })).toBe('| a | b |\n|---|---|\n| x\\|y | 1 |');
    const markdown = renderMarkdown({
      startedAt: 's',
      finishedAt: 'f',
      quick: true,
      machine: {
        cpuModel: 'cpu',
        nproc: 2,
        memTotalGiB: 1,
        memFreeGiB: 1,
        loadAverage: [0, 0, 0],
        kernel: 'k',
        node: 'v24',
        ovs: 'ovs',
        qemu: 'qemu',
      },
      figures: [
        {
          id: 'f1',
          title: 'Figure one',
          method: 'how',
          tables: [],
          goals: [{ figure: 'g', baseline: 'b', goal: '≤ 1', measured: '2', met: false }],
          plots: [],
          notes: [],
          raw: {},
        },
      ],
      failures: [{ id: 'f2', title: 'Figure two', error: 'boom' }],
    });
    expect(markdown).toContain('--only f1');
    expect(markdown).toContain('| g | b | ≤ 1 | 2 | **no** |');
    expect(markdown).toContain('## Figure two: FAILED in this run');
    expect(markdown).not.toContain('loaded machine');
  });

  it('warns in bold when the run shared a loaded machine', () => {
    const markdown = renderMarkdown({
      startedAt: 's',
      finishedAt: 'f',
      quick: false,
      machine: {
        cpuModel: 'cpu',
        nproc: 2,
        memTotalGiB: 1,
        memFreeGiB: 1,
        loadAverage: [12.5, 10, 9],
        kernel: 'k',
        node: 'v24',
        ovs: 'ovs',
        qemu: 'qemu',
      },
      figures: [],
      failures: [],
    });
    expect(markdown).toContain(
      '**This run was taken on a loaded machine** (1-minute load average 12.5 on 2 cores',
    );
  });

  it('writes the raw JSON, the plots and a markdown report that prettier leaves as it is', async () => {
    const root = await mkdtemp(join(tmpdir(), 'violin-report-'));
    try {
      const record = {
        startedAt: 's',
        finishedAt: 'f',
        quick: true,
        machine: {
          cpuModel: 'cpu',
          nproc: 2,
          memTotalGiB: 1,
          memFreeGiB: 1,
          loadAverage: [0, 0, 0],
          kernel: 'k',
          node: 'v24',
          ovs: 'ovs',
          qemu: 'qemu',
        },
        figures: [
          {
            id: 'f1',
            title: 'Figure one',
            method: 'how',
            tables: [{ columns: ['a', 'b'], rows: [['x', 1]] }],
            goals: [{ figure: 'g', baseline: 'b', goal: '≤ 1', measured: '0.5', met: true }],
            plots: [
              { file: 'f1.svg', caption: 'one', svg: '<svg xmlns="http://www.w3.org/2000/svg"></svg>\n' },
            ],
            notes: ['a note'],
            raw: { samples: [1, 2] },
          },
        ],
        failures: [],
      };
      await writeReport(record, { repoRoot: root, outDir: join(root, 'out') });
      expect((await readdir(join(root, 'out'))).sort()).toEqual(['f1.json', 'run.json']);
      const saved = JSON.parse(await readFile(join(root, 'out', 'f1.json'), 'utf8'));
      expect(saved.plots).toEqual([{ file: 'f1.svg', caption: 'one' }]);
      expect(saved.raw).toEqual({ samples: [1, 2] });
      expect(await readFile(join(root, 'docs', 'benchmarks', 'f1.svg'), 'utf8')).toContain('<svg');
      const doc = join(root, 'docs', 'benchmarks.md');
      const markdown = await readFile(doc, 'utf8');
      expect(markdown).toContain('![one](benchmarks/f1.svg)');
      expect(await prettier.format(markdown, { filepath: doc })).toBe(markdown);

      // A later run of another figure only (--only f2) keeps f1 as the first run left it, in order.
      const f2 = { ...record.figures[0]!, id: 'f2', title: 'Figure two', plots: [] };
      f2.goals = [{ figure: 'g2', baseline: 'b', goal: '≤ 1', measured: '3', met: false }];
      expect(await readEarlierFigures(join(root, 'out'), ['f1', 'never-run'])).toHaveLength(1);
      await writeReport(
        {
          ...record,
          startedAt: 's2',
          figures: [f2],
          earlier: await readEarlierFigures(join(root, 'out'), ['f1']),
          order: ['f1', 'f2'],
        },
        { repoRoot: root, outDir: join(root, 'out') },
      );
      const merged = await readFile(doc, 'utf8');
      expect(merged.indexOf('## Figure one')).toBeLessThan(merged.indexOf('## Figure two'));
      expect(merged).toContain(
        '_Measured in an earlier run (s, load average 0 / 0 / 0 at its start, **--quick**); this run measured other figures._',
      );
      expect(merged).toContain('![one](benchmarks/f1.svg)');
      expect(merged).toMatch(/\| g +\| b +\| ≤ 1 +\| 0\.5 +\| yes +\|/);
      expect(merged).toMatch(/\| g2 +\| b +\| ≤ 1 +\| 3 +\| \*\*no\*\* +\|/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
