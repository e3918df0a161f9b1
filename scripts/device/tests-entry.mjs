// Bundle entry for the device: every kernels-cpu test file, then the shim's runner. The test list is filled in by
// stage.mjs (TEST_FILES) so that new test files are picked up without editing this file.
import { run } from 'vitest';
import './test-files.generated.mjs';

process.exitCode = (await run()) > 0 ? 1 : 0;
