// FSDP bench: step time with and without prefetch, and per-rank memory (params + grads +
// optimizer state; peak live bytes and live bytes after forward with reshardAfterForward on
// and off) for world sizes 1, 2, 4 on Gloo over loopback (CPU). Run from the repo root:
//   node --experimental-transform-types --no-warnings bench/fsdp/bench-fsdp.ts [--hidden 128] [--layers 4] [--steps 6] [--timing 0]
// --timing 0 skips the prefetch-off runs and keeps the step-time table already in the output
// file (timings need a quiet machine; memory numbers do not depend on load).
// Writes bench/results/fsdp-cpu.md. Numbers are not asserted anywhere.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { runRanks } from '../../packages/parallel-fsdp/test/helpers/spawn.ts';

const { values } = parseArgs({
  options: {
    hidden: { type: 'string', default: '128' },
    layers: { type: 'string', default: '4' },
    steps: { type: 'string', default: '6' },
    seq: { type: 'string', default: '64' },
    out: { type: 'string', default: 'bench/results/fsdp-cpu.md' },
    timing: { type: 'string', default: '1' },
  },
});
const env = { HIDDEN: values.hidden!, LAYERS: values.layers!, STEPS: values.steps!, GB: '4', SEQ: values.seq! };
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
// Skip the first step (warm-up, order recording).
const stepTime = (ranks: any[]) => Math.max(...ranks.map((r) => median(r.stepMs.slice(1))));
const kib = (b: number) => (b / 1024).toFixed(1);

const timing = values.timing !== '0';
const rows: string[] = [];
const memRows: string[] = [];
const maxOf = (ranks: any[], k: string) => Math.max(...ranks.map((r) => Math.max(...[r[k]].flat())));
let unitNote = '';
for (const n of [1, 2, 4]) {
  const on = await runRanks(n, { ...env, PREFETCH: '1' });
  const noReshard = await runRanks(n, { ...env, PREFETCH: '1', NORESHARD: '1' });
  if (timing) {
    const off = n > 1 ? await runRanks(n, { ...env, PREFETCH: '0' }) : on;
    rows.push(`| ${n} | ${stepTime(on).toFixed(1)} | ${stepTime(off).toFixed(1)} |`);
  }
  const s = on[0].state;
  const units: { root: boolean; bytes: number }[] = on[0].unitBytes;
  const blocks = units.filter((u) => !u.root);
  unitNote = `${blocks.length} block units of ${kib(blocks[0]?.bytes ?? 0)} KiB unsharded each (root unit ${kib(units.find((u) => u.root)?.bytes ?? 0)} KiB, never resharded after forward)`;
  const pOn = maxOf(on, 'peak');
  const pOff = maxOf(noReshard, 'peak');
  const aOn = maxOf(on, 'afterForward');
  const aOff = maxOf(noReshard, 'afterForward');
  memRows.push(
    `| ${n} | ${kib(s.params)} | ${kib(s.grads)} | ${kib(s.optimizerState)} | ${kib(s.total)} | ${kib(pOn)} | ${kib(pOff)} | ${kib(pOff - pOn)} | ${kib(aOn)} | ${kib(aOff)} |`,
  );
  process.stdout.write(`world ${n} done\n`);
}
const previous = existsSync(values.out!) ? readFileSync(values.out!, 'utf8') : '';
const oldTiming = previous.match(/## Step time[\s\S]*?(?=\n## )/)?.[0];
const timingSection = timing
  ? `## Step time (median over steps 2.., slowest rank), ms

| world | prefetch on | prefetch off |
|---|---|---|
${rows.join('\n')}
`
  : `${(oldTiming ?? '## Step time\n\n(not measured)\n').trimEnd()}

(Step times above are from an earlier run, not rerun with the memory table: they need a quiet machine.)
`;
const md = `# FSDP on CPU (Gloo, loopback)

Model: qwen2-style, hidden ${values.hidden}, ${values.layers} layers, vocab 512, global batch 4 × ${values.seq} tokens,
float32, AdamW, clip 1.0; one process per rank on ${cpus().length} CPU cores (${cpus()[0]?.model ?? '?'}).
Command: \`node --experimental-transform-types --no-warnings bench/fsdp/bench-fsdp.ts --hidden ${values.hidden} --layers ${values.layers} --steps ${values.steps} --seq ${values.seq}${timing ? '' : ' --timing 0'}\`
(${new Date().toISOString().slice(0, 10)}).

${timingSection}
## Memory per rank, KiB (max over ranks)

Parameters + gradients + optimizer state are measured on rank 0 after \`optimizer.step()\` (before zeroGrad).
"Peak" is \`memoryStats('cpu').peakBytes\` over the training steps (reset after sharding; activations, all-gather and
reduce-scatter buffers included); "after fwd" is the live bytes right after the forward (before backward).
"on"/"off" is \`reshardAfterForward\`: on, each block unit's unsharded parameters are freed after its forward
(\`Storage.releaseBytes\`, autograd keeps the storage) and all-gathered into the same storage before its backward.
${unitNote}.
"after fwd" differs by exactly their sum; the peak (reached in backward) by less: in both modes the unit in
backward holds its full parameters, full gradients and reduce-scatter buffers, and with reshard on the previous
unit's prefetched all-gather buffers are in flight too (≈ 2-3 units' worth; the saving grows with the number of blocks:
8 blocks of hidden 64 save ≈ 5.8 units at world 2, see packages/parallel-fsdp/test/fsdp.test.ts).
Forward intermediates are freed when the forward returns (tidy around the forward only), so autograd frees
activations unit by unit in backward.

| world | params | grads | optimizer state | total | peak on | peak off | peak saved | after fwd on | after fwd off |
|---|---|---|---|---|---|---|---|---|---|
${memRows.join('\n')}
`;
writeFileSync(values.out!, md);
process.stdout.write(md);
