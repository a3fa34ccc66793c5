// What every benchmark result must look like for the report to be right.
import { expect } from 'vitest';

import type { FigureResult } from '../../../bench/lib/figure.js';

export function expectWellFormed(figure: FigureResult): void {
  expect(figure.id).toMatch(/^[a-z0-9-]+$/);
  expect(figure.method.length).toBeGreaterThan(0);
  expect(figure.tables.length).toBeGreaterThan(0);
  for (const table of figure.tables) {
    expect(table.rows.length).toBeGreaterThan(0);
    for (const row of table.rows) {
      expect(row).toHaveLength(table.columns.length);
      for (const cell of row) expect(String(cell)).not.toMatch(/NaN|undefined|Infinity/);
    }
  }
  expect(figure.goals.length).toBeGreaterThan(0);
  for (const goal of figure.goals) expect(goal.measured).not.toMatch(/NaN|undefined|Infinity/);
  for (const plot of figure.plots) {
    expect(plot.file).toMatch(/^[a-z0-9-]+\.svg$/);
    expect(plot.svg.startsWith('<svg ')).toBe(true);
    expect(plot.svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(plot.svg).not.toMatch(/NaN|undefined|Infinity/);
  }
  expect(() => JSON.stringify(figure.raw)).not.toThrow();
}
