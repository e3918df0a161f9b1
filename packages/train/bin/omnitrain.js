#!/usr/bin/env node
// The `omnitrain` command (built code in ../dist).
import { main } from '../dist/cli.js';

// A closed pipe (`omnitrain launch ... | head`) must not crash the launcher while ranks run.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code !== 'EPIPE') throw e;
  });
}
process.exitCode = await main(process.argv.slice(2), undefined, true);
