// Prints vitest's JSON report as the plain closing line CI reads:
// "tests: N passed, N failed[, N skipped]". Exits non-zero when the report is
// missing or counts no test, so an empty run never looks green. Before it,
// each failed test's name and the start of its message (vitest prints diffs
// and code frames after the message), then every failed test on one line: CI
// keeps only the tail of a run's output, so the list must be last to be whole.
import { readFileSync } from 'node:fs';
import { stripVTControlCharacters as plain } from 'node:util';

const file = process.argv[2] ?? 'out/test-results.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (error) {
  console.error(`test-summary: no vitest report at ${file}: ${error.message}`);
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + (report.numRuntimeErrorTestSuites ?? 0);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
const failures = [];
for (const file of report.testResults ?? []) {
  for (const test of file.assertionResults ?? []) {
    if (test.status !== 'failed') continue;
    failures.push(`${file.name}: ${test.fullName}`);
    console.log(`FAILED ${file.name}: ${test.fullName}`);
    const message = plain((test.failureMessages ?? []).join('\n'))
      .split('\n')
      .slice(0, 24);
    for (const line of message) console.log(`  ${line}`);
  }
  if (file.status === 'failed' && !(file.assertionResults ?? []).some((t) => t.status === 'failed')) {
    failures.push(`${file.name}: ${plain(file.message ?? 'the file did not run')}`);
    console.log(`FAILED ${failures.at(-1)}`);
  }
}
if (failures.length > 0) {
  console.log('failed:');
  for (const failure of failures) console.log(`  ${failure.replace(`${process.cwd()}/`, '')}`);
}
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(passed > 0 && failed === 0 && report.success !== false ? 0 : 1);
