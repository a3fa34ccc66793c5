// The table of chaos runs, as out/chaos.json and a markdown table (out/chaos.md, docs/reliability.md).
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import type { ChaosReport, ChaosRunResult } from './results.js';

function heldCell(run: ChaosRunResult): string {
  const { held, released, dropped, note } = run.held;
  if (held === undefined) return note ?? '—';
  return `${held}/${released}${dropped ? `, ${dropped} dropped` : ''}`;
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function markdownTable(report: ChaosReport): string {
  const header = [
    '| # | component | operation, phase (at kill) | delay, outage | outcome | reason | VMs running | total conserved | held/released | leftovers | duration | ok |',
    '| - | --------- | -------------------------- | ------------- | ------- | ------ | ----------- | --------------- | ------------- | --------- | -------- | -- |',
  ];
  const rows = report.runs.map((run) => {
    // A check that had to read again (a round only looked settled) says so: it is how often a single read would have been wrong.
    const reread = run.bank?.unconfirmedRounds ? `, ${run.bank.unconfirmedRounds} round(s) read again` : '';
    const bank = run.bank
      ? `${run.bank.ok ? 'yes' : 'NO'} (${run.bank.total}/${run.bank.expected})${reread}`
      : 'not checked';
    const vms = run.vmProblems.length === 0 ? 'yes' : `NO: ${run.vmProblems.join('; ')}`;
    const extra = [...run.leftovers, ...(run.recovery ? [`recovery: ${run.recovery}`] : [])];
    return `| ${[
      String(run.index),
      run.target,
      `${run.operation}, ${run.phase} (${run.killedIn || '—'})`,
      `${run.delayMs} ms, ${run.outageMs} ms`,
      run.outcome,
      run.reason || '—',
      vms,
      bank,
      heldCell(run),
      extra.length === 0 ? 'none' : extra.join('; '),
      `${Math.round(run.durationMs / 1000)} s`,
      run.ok ? 'yes' : `**NO**: ${run.problems.join('; ')}`,
    ]
      .map(cell)
      .join(' | ')} |`;
  });
  const passed = report.runs.filter((r) => r.ok).length;
  return [
    `Seed ${report.seed}, ${report.runs.length} runs, ${passed} passed every check (started ${report.startedAt}).`,
    '',
    ...header,
    ...rows,
    '',
  ].join('\n');
}

export async function writeReport(
  report: ChaosReport,
  jsonPath: string,
  markdownPath: string,
): Promise<void> {
  await mkdir(dirname(jsonPath), { recursive: true });
  await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(markdownPath, markdownTable(report));
}
