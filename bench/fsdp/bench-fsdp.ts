// FSDP bench: step time with and without prefetch, and per-rank memory (params + grads +
// optimizer state, peak live bytes) for world sizes 1, 2, 4 on Gloo over loopback (CPU).
// Run from the repo root:
//   node --experimental-transform-types --no-warnings bench/fsdp/bench-fsdp.ts [--hidden 128] [--layers 4] [--steps 6]
// Writes bench/results/fsdp-cpu.md. Numbers are not asserted anywhere.
import { writeFileSync } from 'node:fs';
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

const rows: string[] = [];
const memRows: string[] = [];
for (const n of [1, 2, 4]) {
  const on = await runRanks(n, { ...env, PREFETCH: '1' });
  const off = n > 1 ? await runRanks(n, { ...env, PREFETCH: '0' }) : on;
  rows.push(`| ${n} | ${stepTime(on).toFixed(1)} | ${stepTime(off).toFixed(1)} |`);
  const s = on[0].state;
  memRows.push(
    `| ${n} | ${kib(s.params)} | ${kib(s.grads)} | ${kib(s.optimizerState)} | ${kib(s.total)} | ${kib(Math.max(...on.map((r) => r.peak)))} |`,
  );
  process.stdout.write(`world ${n} done\n`);
}
const md = `# FSDP on CPU (Gloo, loopback)

Model: qwen2-style, hidden ${values.hidden}, ${values.layers} layers, vocab 512, global batch 4 × ${values.seq} tokens,
float32, AdamW, clip 1.0; one process per rank on ${cpus().length} CPU cores (${cpus()[0]?.model ?? '?'}).
Command: \`node --experimental-transform-types --no-warnings bench/fsdp/bench-fsdp.ts --hidden ${values.hidden} --layers ${values.layers} --steps ${values.steps} --seq ${values.seq}\`
(${new Date().toISOString().slice(0, 10)}).

## Step time (median over steps 2.., slowest rank), ms

| world | prefetch on | prefetch off |
|---|---|---|
${rows.join('\n')}

## Memory per rank (rank 0), KiB

Parameters + gradients + optimizer state are measured after \`optimizer.step()\` (before zeroGrad);
peak is \`memoryStats('cpu').peakBytes\` over the run (activations and the unsharded units included:
the full parameters stay referenced by autograd until backward: core has no storage resize to free them early).
Timings are on 2 shared, busy cores with all ranks on them: noisy, and overlap cannot pay off when ranks compete for the same cores.

| world | params | grads | optimizer state | total | peak live |
|---|---|---|---|---|---|
${memRows.join('\n')}
`;
writeFileSync(values.out!, md);
process.stdout.write(md);
