// Prints the plain closing line CI reads ("N passed, N failed") from vitest's JSON report.
// A failed pre-test check (lint, typecheck, package check) counts as one failure.
import { existsSync, readFileSync } from 'node:fs';

const [file, checkStatus] = process.argv.slice(2);
let passed = 0;
let failed = Number(checkStatus) ? 1 : 0;
let skipped = 0;
if (file && existsSync(file)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  passed = r.numPassedTests ?? 0;
  failed += r.numFailedTests ?? 0;
  skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  // A test file that failed to load has no failed tests but must still fail the run.
  for (const suite of r.testResults ?? []) if (suite.status === 'failed' && !suite.assertionResults?.length) failed++;
} else {
  failed += 1;
}
// Skipped tests (hardware-gated ones, e.g. AVX-512 BF16) go on the line before: CI reads the last line's exact form.
if (skipped) console.log(`${skipped} skipped (not counted)`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
