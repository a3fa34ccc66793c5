// Prints vitest's JSON report as the plain closing line CI reads:
// "tests: N passed, N failed[, N skipped]". Exits non-zero when the report is
// missing or counts no test, so an empty run never looks green.
import { readFileSync } from 'node:fs';

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
console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(passed > 0 && failed === 0 && report.success !== false ? 0 : 1);
